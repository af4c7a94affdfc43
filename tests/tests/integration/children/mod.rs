//! The children dying: helpers, the runner and workers killed, failing to start or killed at random, and the server taking them with it.

mod chaos;
mod child_deaths;
mod restart_backoff;
mod server_death;
mod worker_death;
