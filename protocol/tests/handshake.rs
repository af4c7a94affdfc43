//! The version handshake.

mod common;

use protocol::{Channel, Error, FromHelper, Hello, Received, Role, ToHelper, PROTOCOL_VERSION};

#[test]
fn our_own_hello_passes_the_check() {
    for role in [Role::Server, Role::Helper, Role::CgiRunner] {
        let hello = Hello::new(role);
        assert_eq!(hello.version, PROTOCOL_VERSION);
        assert_eq!(hello.pid, std::process::id());
        hello.check_version().expect("same version");
    }
}

#[test]
fn a_version_mismatch_is_an_error_naming_both_versions() {
    let mut hello = Hello::new(Role::Helper);
    hello.version = PROTOCOL_VERSION + 7;
    match hello.check_version() {
        Err(Error::VersionMismatch { ours, theirs }) => {
            assert_eq!(ours, PROTOCOL_VERSION);
            assert_eq!(theirs, PROTOCOL_VERSION + 7);
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    let text = hello.check_version().expect_err("mismatch").to_string();
    assert!(
        text.contains(&PROTOCOL_VERSION.to_string())
            && text.contains(&(PROTOCOL_VERSION + 7).to_string())
    );
}

#[test]
fn a_handshake_over_a_real_socket() {
    let (server, child) = common::pair();
    let mut server = Channel::new(server);
    let mut child = Channel::new(child);

    // A good handshake.
    server
        .send(&ToHelper::Hello(Hello::new(Role::Server)), &[])
        .expect("send");
    let Some(Received {
        message: ToHelper::Hello(hello),
        fds,
    }) = child.recv::<ToHelper>().expect("recv")
    else {
        panic!("expected hello")
    };
    assert!(fds.is_empty());
    hello.check_version().expect("versions match");
    assert_eq!(hello.role, Role::Server);
    child
        .send(&FromHelper::Hello(Hello::new(Role::Helper)), &[])
        .expect("send");
    let Some(Received {
        message: FromHelper::Hello(reply),
        ..
    }) = server.recv::<FromHelper>().expect("recv")
    else {
        panic!("expected hello")
    };
    reply.check_version().expect("versions match");
    assert_eq!(reply.role, Role::Helper);

    // A peer from another version is refused by the check.
    let mut old = Hello::new(Role::Server);
    old.version = PROTOCOL_VERSION.wrapping_sub(1);
    server.send(&ToHelper::Hello(old), &[]).expect("send");
    let Some(Received {
        message: ToHelper::Hello(hello),
        ..
    }) = child.recv::<ToHelper>().expect("recv")
    else {
        panic!("expected hello")
    };
    assert!(matches!(
        hello.check_version(),
        Err(Error::VersionMismatch { .. })
    ));
}
