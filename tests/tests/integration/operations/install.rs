//! Installing: `dist/install.sh --root DIR` (a real `cargo install` of the
//! three packages, `--debug --target-dir` the workspace's target directory
//! so that it reuses the build) puts `server`, `helper` and `cgi-runner` in DIR/bin,
//! the man page and the completions under DIR/share; the installed server
//! finds its helper and runner beside itself and serves a file and a
//! script.

use std::fs;
use std::path::Path;
use std::time::Duration;

use tests::binaries::target_dir;
use tests::cgi::{CgiSite, TEXT_HEAD};
use tests::procfs::{live_children, poll_until};
use tests::{run_with_deadline, workspace_root, ServerProcess, DEADLINE};

/// A `cargo install` of three packages whose build is up to date copies
/// files; a loaded machine may still take a while to check.
const INSTALL_DEADLINE: Duration = Duration::from_secs(600);

fn run_install(root: &Path) {
    // `cargo test` names its cargo in CARGO, which the script uses.
    let target = target_dir();
    let script = workspace_root().join("dist/install.sh");
    let args = [
        script.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--debug".as_ref(),
        // Everything it needs was fetched for the build that runs this.
        "--offline".as_ref(),
        "--target-dir".as_ref(),
        target.as_os_str(),
    ];
    let output = run_with_deadline(Path::new("sh"), &args, INSTALL_DEADLINE);
    assert!(
        output.status.success(),
        "dist/install.sh failed ({}):\n{}",
        output.status,
        output.combined()
    );
}

#[test]
fn the_install_script_installs_a_working_server() {
    let site = CgiSite::new("install");
    site.file("hello.txt", b"installed\n");
    site.script(
        "cgi-bin/hi.cgi",
        &format!("{TEXT_HEAD}\necho hi from a script\n"),
    );
    let root = site.outside().join("prefix");
    run_install(&root);

    for binary in ["server", "helper", "cgi-runner"] {
        assert!(
            root.join("bin").join(binary).is_file(),
            "bin/{binary} installed"
        );
    }
    let man = fs::read_to_string(root.join("share/man/man1/server.1")).expect("the man page");
    assert!(man.contains(".TH server 1"), "a man page");
    for completion in [
        "share/bash-completion/completions/server",
        "share/zsh/site-functions/_server",
        "share/fish/vendor_completions.d/server.fish",
    ] {
        let text = fs::read_to_string(root.join(completion)).expect(completion);
        assert!(
            text.contains("keepalive-timeout"),
            "{completion} names the options"
        );
    }

    let server_root = site.root().to_str().expect("UTF-8");
    let server = ServerProcess::start_binary(
        &root.join("bin/server"),
        "127.0.0.1:0",
        &["--root", server_root],
        &[],
    );
    let response = server.connect().get("/hello.txt");
    response.assert_status(200);
    assert_eq!(response.body_text(), "installed\n");
    let response = server.connect().get_dechunked("/cgi-bin/hi.cgi");
    response.assert_status(200);
    assert_eq!(response.body_text(), "hi from a script\n");
    // The children are the installed ones.
    let pid = i32::try_from(server.pid()).expect("pid");
    let helper_exe = root.join("bin/helper");
    let runs_installed_helper = || {
        live_children(pid).iter().any(|c| {
            fs::read_link(format!("/proc/{}/exe", c.pid)).is_ok_and(|exe| exe == helper_exe)
        })
    };
    assert!(
        poll_until(DEADLINE, runs_installed_helper),
        "the server runs the installed helper"
    );
}
