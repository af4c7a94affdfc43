//! The generated documentation: `server --print-man-page` is a roff man
//! page naming every long option of `server --help`, and
//! `server --print-completions SHELL` a completion script that names them
//! too; an unknown shell is a usage error.

use tests::options::server_long_options;
use tests::{run_with_deadline, server_bin, DEADLINE};

#[test]
fn the_man_page_names_every_option() {
    let output = run_with_deadline(&server_bin(), &["--print-man-page"], DEADLINE);
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        output.stdout.starts_with(".ie"),
        "roff: {}",
        &output.stdout[..80.min(output.stdout.len())]
    );
    assert!(output.stdout.contains(".TH server 1"), "a section-1 page");
    // roff writes a dash as `\-`.
    let page = output.stdout.replace("\\-", "-");
    for option in server_long_options() {
        assert!(
            page.contains(&option),
            "the man page does not mention {option}"
        );
    }
}

#[test]
fn completions_name_every_option() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run_with_deadline(&server_bin(), &["--print-completions", shell], DEADLINE);
        assert!(output.status.success(), "{shell}: {}", output.stderr);
        for option in server_long_options() {
            let name = option.trim_start_matches("--");
            assert!(
                output.stdout.contains(name),
                "the {shell} completions do not mention {option}"
            );
        }
    }
    let output = run_with_deadline(&server_bin(), &["--print-completions", "tcsh"], DEADLINE);
    assert_eq!(output.status.code(), Some(2), "{}", output.stderr);
    assert_eq!(output.stderr.lines().count(), 1, "{}", output.stderr);
}
