//! A throw-away CA and a server certificate for 127.0.0.1 (subjectAltName
//! IP, so that `sslmode=verify-full` works), made with the `openssl` CLI.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::process::{chown_to_server_user, run_checked, unique_suffix};

/// The files, in a private directory the server user owns and can read
/// (the server reads the key; standby backends read the CA files).
pub struct Certs {
    pub dir: PathBuf,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing the server presents.
    pub other_ca: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
}

impl Certs {
    /// postgresql.conf lines that turn TLS on with this certificate.
    pub fn server_conf(&self) -> Vec<String> {
        vec![
            "ssl = on".into(),
            format!("ssl_cert_file = '{}'", self.server_crt.display()),
            format!("ssl_key_file = '{}'", self.server_key.display()),
        ]
    }
}

static CERTS: OnceLock<Certs> = OnceLock::new();

/// This process's certificates, made on first use and removed at exit
/// (unless NETBUF_TEST_KEEP=1).  Make them before the servers that use
/// them: the removal, registered first, then runs after the servers stop.
pub fn certificates() -> &'static Certs {
    CERTS.get_or_init(make_certs)
}

extern "C" fn remove_certs() {
    if let Some(c) = CERTS.get() {
        let _ = fs::remove_dir_all(&c.dir);
    }
}

fn openssl(dir: &Path, args: &[&str], what: &str) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    run_checked(cmd, what);
}

/// A self-signed CA: `<name>.crt` and `<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (key, crt, subject) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN=netbuf test {name}"),
    );
    let mut args = vec!["req", "-x509", "-new"];
    args.extend(EC_KEY);
    args.extend([
        "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subject,
    ]);
    openssl(dir, &args, &format!("openssl: CA {name}"));
}

/// A new P-256 key, unencrypted.
const EC_KEY: [&str; 5] = [
    "-nodes",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
];

fn make_certs() -> Certs {
    // The tests install nothing: without the CLI they stop and say so.
    if let Err(e) = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
    {
        panic!("the `openssl` command-line tool is needed for the TLS tests ({e}); install it");
    }
    let base = std::env::var_os("NETBUF_TEST_TMPDIR").unwrap_or_else(|| "/tmp".into());
    let dir = Path::new(&base).join(format!("netbuf-tls-{}", unique_suffix()));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    if !std::env::var("NETBUF_TEST_KEEP").is_ok_and(|v| v == "1") {
        // SAFETY: registering a plain extern "C" fn that never unwinds.
        unsafe { libc::atexit(remove_certs) };
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");

    make_ca(&dir, "ca");
    make_ca(&dir, "other_ca");
    let mut args = vec!["req", "-new"];
    args.extend(EC_KEY);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&dir, &args, "openssl: server key and CSR");
    fs::write(
        dir.join("server.ext"),
        "basicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1\n",
    )
    .expect("server.ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        "openssl: server certificate",
    );
    for private in ["server.key", "ca.key", "other_ca.key"] {
        fs::set_permissions(dir.join(private), fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
    }
    chown_to_server_user(&dir);
    Certs {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other_ca.crt"),
        server_crt: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        dir,
    }
}
