//! Cross-check against an independent generator: `oathtool` (Debian's OATH Toolkit).
//! `.ci/run` installs it; the test fails, not skips, when it is missing.

use std::process::Command;

fn oathtool(args: &[&str]) -> String {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool must be installed (apt-get install oathtool; .ci/run does it)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn agrees_with_oathtool_on_random_secrets_and_times() {
    for i in 0..20u64 {
        let secret = tessera_otp::generate_secret();
        let b32 = tessera_otp::secret_base32(&secret);
        let t = 1_000_000_000 + i * 7_919_993;
        let theirs = oathtool(&["--totp", "-b", "-N", &format!("@{t}"), &b32]);
        assert_eq!(tessera_otp::totp(&secret, t), theirs, "secret {b32} at {t}");
    }
}

#[test]
fn agrees_with_oathtool_on_the_rfc_vector() {
    assert_eq!(
        oathtool(&[
            "--totp",
            "-d",
            "8",
            "-N",
            "@59",
            "3132333435363738393031323334353637383930"
        ]),
        "94287082"
    );
    let seed = b"12345678901234567890";
    assert_eq!(
        tessera_otp::hotp(tessera_otp::Algorithm::Sha1, seed, 1, 8),
        94287082
    );
}
