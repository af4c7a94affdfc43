//! Static files: the cache and its freshness, listings, gzip_static, large and extreme files, links to dot-files, the slow disk and the send path, lookups that hang.

mod cache_freshness;
mod dir_listing;
mod dot_file_links;
mod extreme_files;
mod gzip_static;
mod https_slow_disk;
mod hung_lookups;
mod large_file_memory;
mod listing_memory;
mod misnumbered_replies;
mod never_blocks;
mod slow_disk;
mod static_files;
mod stuck_reads;
mod window_memory;
