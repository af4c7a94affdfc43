//! The configuration file (`--config`): the example in `dist/amped.toml`
//! names every option and passes `--check-config`; keys set options, the
//! command line overrides them; an unknown key, a wrong type, a bad value
//! and a setting the machine refuses each end in one line naming the file,
//! the position and the key, with exit status 2.

use std::fs;
use std::path::{Path, PathBuf};

use tests::options::configurable_options;
use tests::{
    run_with_deadline, server_bin, workspace_root, Connection, RunOutput, ServerProcess,
    TempDocroot, DEADLINE,
};

/// Exit status of `--check-config` for anything wrong.
const CONFIG_ERROR: i32 = 2;

fn example() -> PathBuf {
    workspace_root().join("dist/amped.toml")
}

/// Writes `text` as `amped.toml` beside the docroot and returns its path.
fn config_file(docroot: &TempDocroot, text: &str) -> PathBuf {
    let path = docroot.outside().join("amped.toml");
    fs::write(&path, text).expect("write the config file");
    path
}

fn check(config: &Path, extra: &[&str]) -> RunOutput {
    let mut args = vec![
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--check-config",
    ];
    args.extend_from_slice(extra);
    run_with_deadline(&server_bin(), &args, DEADLINE)
}

/// Runs `--check-config` and expects exit status 2 with one line, which it
/// returns.
fn check_fails(config: &Path, extra: &[&str]) -> String {
    let output = check(config, extra);
    assert_eq!(
        output.status.code(),
        Some(CONFIG_ERROR),
        "--check-config should fail; stdout {:?} stderr {:?}",
        output.stdout,
        output.stderr
    );
    assert_eq!(
        output.stderr.lines().count(),
        1,
        "one line: {:?}",
        output.stderr
    );
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
    output.stderr
}

#[test]
fn the_example_names_every_option() {
    let text = fs::read_to_string(example()).expect("read dist/amped.toml");
    let keys: Vec<&str> = text
        .lines()
        .map(|line| line.trim_start_matches(['#', ' ']))
        .filter_map(|line| line.split_once(" = ").map(|(key, _)| key))
        .collect();
    for option in configurable_options() {
        let key = option.trim_start_matches("--");
        assert!(
            keys.contains(&key),
            "dist/amped.toml does not list `{key}` (keys: {keys:?})"
        );
    }
}

#[test]
fn the_example_passes_check_config() {
    // Its `root = "www"` is relative to the working directory: the command
    // line names the workspace's, which also shows the override.
    let www = workspace_root().join("www");
    let output = check(&example(), &["--root", www.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    assert!(
        output.stdout.contains("configuration OK"),
        "{}",
        output.stdout
    );
    // A host whose hard descriptor limit is under what the example's
    // options may use gets a warning about it; that is the host's, not
    // the example's.
    let other = output
        .stderr
        .lines()
        .filter(|l| !l.contains("the descriptor limit ("))
        .count();
    assert_eq!(other, 0, "{}", output.stderr);
}

#[test]
fn keys_set_options_and_the_command_line_wins() {
    let docroot = TempDocroot::new("config-file");
    docroot.write("hello.txt", b"hello\n");
    let root = docroot.path().to_str().expect("UTF-8").to_owned();
    let config = config_file(
        &docroot,
        &format!(
            "root = \"{root}\"\nstatus-path = \"/from-file\"\nhelpers = 1\n\
             status-allow-remote = true\n"
        ),
    );
    let config = config.to_str().expect("UTF-8");
    let server = ServerProcess::start(&["--config", config]);
    let mut conn = Connection::connect(server.addr());
    conn.get("/from-file").assert_status(200);
    conn.get("/hello.txt").assert_status(200);
    drop(server);

    let server = ServerProcess::start(&["--config", config, "--status-path", "/from-cli"]);
    let mut conn = Connection::connect(server.addr());
    conn.get("/from-cli").assert_status(200);
    conn.get("/from-file").assert_status(404);
}

#[test]
fn mistakes_name_the_file_the_place_and_the_key() {
    let docroot = TempDocroot::new("config-errors");
    let root = docroot.path().to_str().expect("UTF-8").to_owned();
    // Each file starts with a good `root` line: positions count from it.
    let cases = [
        (
            "helpers = 2\n  bogus-key = 1\n",
            ":3:3: key `bogus-key`: unknown key",
        ),
        ("helpers = 100\n", ":2:1: key `helpers`: "),
        ("helpers = \"two\"\n", ":2:1: key `helpers`: "),
        (
            "status-allow-remote = 1\n",
            ":2:1: key `status-allow-remote`: must be true or false",
        ),
        (
            "keepalive-timeout = 1.5\n",
            ":2:1: key `keepalive-timeout`: must be a string or an integer",
        ),
        (
            "helpers = [\"x\"]\n",
            ":2:1: key `helpers`: must be a string or an integer",
        ),
        (
            "config = \"other.toml\"\n",
            ":2:1: key `config`: unknown key",
        ),
        (
            "\n\ncache-size = \"32K\"\n",
            ":4:1: key `cache-size`: --cache-size must be at least 64K",
        ),
        ("helpers = \n", ":2:"),
    ];
    for (text, expected) in cases {
        let text = format!("root = \"{root}\"\n{text}");
        let config = config_file(&docroot, &text);
        let line = check_fails(&config, &[]);
        let expected = format!("{}{expected}", config.display());
        assert!(
            line.contains(&expected),
            "for {text:?}: expected {expected:?} in {line:?}"
        );
    }
    // Starting for real refuses the same file the same way, before
    // listening.
    let config = config_file(&docroot, &format!("root = \"{root}\"\nhelpers = 0\n"));
    let output = run_with_deadline(
        &server_bin(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().expect("UTF-8"),
        ],
        DEADLINE,
    );
    assert_eq!(
        output.status.code(),
        Some(CONFIG_ERROR),
        "{}",
        output.stderr
    );
    assert!(!output.stdout.contains("listening on"), "{}", output.stdout);
    assert!(
        output.stderr.contains(":2:1: key `helpers`: "),
        "{}",
        output.stderr
    );
    // A value the command line sets is the command line's mistake.
    let config = config_file(&docroot, &format!("root = \"{root}\"\n"));
    let line = check_fails(&config, &["--cache-size", "32K"]);
    assert!(line.contains("--cache-size must be at least 64K"), "{line}");
    assert!(!line.contains("amped.toml:"), "{line}");
    // A missing file.
    let line = check_fails(&docroot.outside().join("missing.toml"), &[]);
    assert!(line.contains("missing.toml: cannot read"), "{line}");
}

#[test]
fn listeners_and_certificates_come_from_the_file_as_arrays() {
    let docroot = TempDocroot::new("config-tls");
    docroot.write("index.html", b"from the file\n");
    let certs = tests::tls::make_certs(&docroot.outside(), "a");
    let (_, cert, key) = certs.paths();
    let root = docroot.path().to_str().expect("UTF-8");
    let config = config_file(
        &docroot,
        &format!(
            "root = \"{root}\"\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n\
             listen-tls = [\"127.0.0.1:0\"]\ntls-cert = [\"{cert}\"]\ntls-key = [\"{key}\"]\n\
             hsts = \"max-age=60\"\naccess-log = \"off\"\n"
        ),
    );
    let config = config.to_str().expect("UTF-8");
    assert_eq!(check(Path::new(config), &[]).status.code(), Some(0));
    let mut command = std::process::Command::new(server_bin());
    command.args(["--config", config]);
    let server = ServerProcess::start_command(command);
    let line = server.stdout_text();
    let urls = tests::server_process::parse_listening_line(line.lines().next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    let kinds: Vec<bool> = urls.iter().map(|&(tls, _)| tls).collect();
    assert_eq!(kinds, [false, false, true], "{line}");
    for &(tls, port) in &urls {
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://localhost:{port}/index.html");
        let page = tests::tls::curl_https(&docroot, &certs.ca, port, &[&url]);
        assert_eq!(page, b"from the file\n", "{url}");
    }
}
