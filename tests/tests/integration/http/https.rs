//! HTTPS with real clients, under each event backend: certificates made by
//! the test (a CA and a server certificate for `localhost`, with rcgen),
//! curl trusting that CA gets the same bytes over HTTPS as over plain HTTP
//! (a page, a 1 MiB file, a range); plain HTTP sent to the TLS
//! port gets a 400 saying so; `openssl s_client` is refused TLS 1.1 and
//! TLS 1.2 suites without forward secrecy or an AEAD, gets no compression,
//! resumes with a ticket, and sees the new certificate after SIGHUP while
//! a connection opened before keeps working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use tests::tls::{curl, curl_https, https_url, make_certs, s_client, serve_tls, tls_site};
use tests::{per_backend, procfs::poll_until, TempDocroot, DEADLINE};

fn https_serves_the_same_bytes_as_http(backend: &str) {
    let (site, certs, server) = tls_site("https-bytes", b"<h1>hello over TLS</h1>\n", backend);
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    site.write("big.bin", &big);
    let https = |args: &[&str]| curl_https(&site, &certs.ca, server.tls_port(), args);
    let plain = curl(
        &site,
        &["-sS", "--max-time", "30", &server.url("/index.html")],
    );
    let index = https_url(&server, "/index.html");
    let big_url = https_url(&server, "/big.bin");
    assert_eq!(https(&[&index]), plain, "the page over HTTPS");
    tests::assert_bytes_eq("a 1 MiB file over HTTPS", &https(&[&big_url]), &big);
    assert_eq!(plain, b"<h1>hello over TLS</h1>\n");
    let range = https(&["-r", "1000-1999", &big_url]);
    tests::assert_bytes_eq("a range over HTTPS", &range, &big[1000..2000]);
}

fn plain_http_to_the_tls_port_gets_a_400(backend: &str) {
    let (_site, _certs, server) = tls_site("https-plain", b"x", backend);
    let mut stream = TcpStream::connect(("127.0.0.1", server.tls_port())).expect("connect");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("read until closed");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("The plain HTTP request was sent to HTTPS port"));
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
}

per_backend!(
    https_serves_the_same_bytes_as_http,
    plain_http_to_the_tls_port_gets_a_400
);

#[test]
fn old_protocols_are_refused_and_tickets_resume() {
    // s_client with -ign_eof holds its connection until the server closes
    // it: a short header timeout does that soon after the ticket is read.
    let site = TempDocroot::new("https-openssl");
    let certs = make_certs(&site.outside(), "a");
    let server = serve_tls(site.path(), &certs, "epoll", &["--header-timeout", "1"]);
    let ca = certs.ca.to_str().expect("utf-8");
    let old = s_client(&server, &["-tls1_1"]);
    assert!(
        !old.contains("Cipher is TLS"),
        "TLS 1.1 was accepted: {old}"
    );
    // TLS 1.2 without forward secrecy (RSA key exchange) or without an
    // AEAD (CBC with HMAC) is refused; ECDHE with AES-GCM is taken.
    for suite in [
        "AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
    ] {
        let weak = s_client(&server, &["-tls1_2", "-cipher", suite]);
        assert!(
            weak.contains("Cipher is (NONE)"),
            "{suite} was accepted: {weak}"
        );
    }
    let strong = s_client(
        &server,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(
        strong.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{strong}"
    );
    assert!(strong.contains("Compression: NONE"), "{strong}");
    // A client that offers only protocols amped does not speak is refused
    // with the alert TLS 1.3 names for it, after the ServerHello it was
    // already sent; one that offers h2 gets it, HTTP/1.1 otherwise.
    let unknown = s_client(&server, &["-alpn", "spdy/3"]);
    assert!(
        unknown.contains("alert no application protocol"),
        "{unknown}"
    );
    let h2 = s_client(&server, &["-CAfile", ca, "-alpn", "http/1.1,h2"]);
    assert!(h2.contains("ALPN protocol: h2"), "{h2}");
    let fresh = s_client(&server, &["-CAfile", ca, "-alpn", "http/1.1"]);
    assert!(fresh.contains("ALPN protocol: http/1.1"), "{fresh}");
    assert!(fresh.contains("Verify return code: 0 (ok)"), "{fresh}");
    // A ticket arrives after the handshake: s_client saves it once it has
    // read it, so a request is sent and answered first.
    let session = site.outside().join("session.pem");
    let session = session.to_str().expect("utf-8");
    let mut resumed = String::new();
    let ok = poll_until(DEADLINE, || {
        let _ = s_client(&server, &["-CAfile", ca, "-sess_out", session, "-ign_eof"]);
        resumed = s_client(&server, &["-CAfile", ca, "-sess_in", session]);
        resumed.contains("Reused, TLSv1.3")
    });
    assert!(ok, "no resumption: {resumed}");
    // TLS 1.2 resumes too, by ticket and, for a client that takes no
    // tickets, by session id from the server's cache.
    for tickets in [&[][..], &["-no_ticket"][..]] {
        let mut resumed = String::new();
        let ok = poll_until(DEADLINE, || {
            let mut first = vec!["-CAfile", ca, "-tls1_2", "-sess_out", session];
            first.extend_from_slice(tickets);
            let _ = s_client(&server, &first);
            let mut again = vec!["-CAfile", ca, "-tls1_2", "-sess_in", session];
            again.extend_from_slice(tickets);
            resumed = s_client(&server, &again);
            resumed.contains("Reused, TLSv1.2")
        });
        assert!(ok, "no TLS 1.2 resumption {tickets:?}: {resumed}");
    }
}

#[test]
fn sighup_swaps_the_certificate_for_new_handshakes_only() {
    let (site, first, server) = tls_site("https-reload", b"still here\n", "epoll");
    let second = make_certs(&site.outside(), "b");
    let subject = |ca: &Path| {
        let ca = ca.to_str().expect("utf-8");
        s_client(&server, &["-CAfile", ca])
    };
    assert!(subject(&first.ca).contains("Verify return code: 0 (ok)"));
    std::fs::copy(&second.cert, &first.cert).expect("swap cert");
    std::fs::copy(&second.key, &first.key).expect("swap key");
    let pid = server.pid_t();
    // SAFETY: kill(2) on the server this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let swapped = poll_until(DEADLINE, || {
        subject(&second.ca).contains("Verify return code: 0 (ok)")
    });
    assert!(swapped, "the new certificate is not served after SIGHUP");
    // A file that fails to load leaves the certificate in use.
    std::fs::write(&first.key, b"not a key").expect("break key");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let logged = poll_until(DEADLINE, || {
        server
            .stderr_text()
            .contains("the certificates in use stay")
    });
    assert!(logged, "no error line: {}", server.stderr_text());
    assert!(subject(&second.ca).contains("Verify return code: 0 (ok)"));
}
