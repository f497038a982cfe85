//! A throwaway PostgreSQL server for tests, benches and demonstrations.
//!
//! [`PgServer::start`] runs `initdb` into a new temporary directory and `pg_ctl start` on a
//! free loopback port, and [`Drop`] stops it (`pg_ctl stop -m immediate`) and removes the
//! directory, also when a test panics. PostgreSQL refuses to run as root: when this process
//! is root the server's binaries run as the `postgres` user (through `runuser`), which owns
//! the directory. Readiness is `pg_ctl start -w`, a bounded wait, never a sleep. Logins over
//! TCP need a password (`scram-sha-256`): the superuser's is made at random and is in
//! [`PgServer::url`].

use crate::{Result, StoreError};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `postgresql-15` package puts the server's binaries; `COWHEAP_PG_BIN`
/// overrides it.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running PostgreSQL server in a temporary directory, stopped when dropped.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    as_postgres: bool,
    stopped: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgServer {
    /// Starts a server. Time: about a second (`initdb`).
    ///
    /// # Errors
    /// [`StoreError::Server`] with the reason (binaries missing, `initdb` or `pg_ctl`
    /// failing, with their output and the server's log) if it cannot start.
    pub fn start() -> Result<PgServer> {
        let bin = std::env::var_os("COWHEAP_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN));
        if !bin.join("initdb").exists() {
            return Err(StoreError::Server(format!(
                "no {} (install Debian's postgresql-15, or set COWHEAP_PG_BIN)",
                bin.join("initdb").display()
            )));
        }
        let as_postgres = is_root();
        // As root the server runs as `postgres`, which must reach the directory: /tmp,
        // whatever TMPDIR says (it may lie under a directory only root can enter).
        let mut builder = tempfile::Builder::new();
        builder.prefix("cowheap-pg-");
        let dir = if as_postgres {
            builder.tempdir_in("/tmp")
        } else {
            builder.tempdir()
        }
        .map_err(|e| StoreError::Server(format!("temporary directory: {e}")))?;
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:").arg(dir.path()),
                "chown",
            )?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| StoreError::Server(format!("no free port: {e}")))?;
        // The superuser's password: host logins need one (scram-sha-256), so a principal's
        // role is authenticated by its secret as it would be in a deployment.
        let password = blake3::hash(
            format!(
                "{:?}{}{}",
                std::time::SystemTime::now(),
                std::process::id(),
                port
            )
            .as_bytes(),
        )
        .to_hex()[..32]
            .to_owned();
        let pwfile = dir.path().join("superuser-password");
        std::fs::write(&pwfile, format!("{password}\n"))
            .map_err(|e| StoreError::Server(format!("password file: {e}")))?;
        let mut server = PgServer {
            bin,
            dir,
            port,
            password,
            as_postgres,
            stopped: true,
        };
        let data = server.data();
        server.pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        // fsync off: the tests kill nodes, never the server, and the server's own
        // durability is PostgreSQL's business.
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            server.dir.path().display()
        );
        let log = server.dir.path().join("server.log");
        let started = server.pg(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
            ],
        );
        if let Err(StoreError::Server(why)) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(StoreError::Server(format!("{why}\nserver log:\n{log}")));
        }
        server.stopped = false;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        run(&mut cmd, tool)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password={} dbname={db}",
            self.port, self.password
        )
    }

    /// Creates database `db` and returns its connection string: one per test, as sqlx does.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the server refuses.
    pub fn create_db(&self, db: &str) -> Result<String> {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| StoreError::db("connect", e))?;
        c.batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .map_err(|e| StoreError::db("create a database", e))?;
        Ok(self.url(db))
    }

    /// The directory the server lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server now.
    ///
    /// # Errors
    /// [`StoreError::Server`] if `pg_ctl stop` fails.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let data = self.data();
        self.pg(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Nothing more to do with a failure here; the directory goes anyway.
        let _ = self.stop();
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| StoreError::Server(format!("{what}: cannot run: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(StoreError::Server(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
