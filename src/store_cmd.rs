//! `cowheap store ...`: a store of bases and tenant states shared by nodes (a local directory
//! or PostgreSQL), and command-line nodes that resume, change and suspend tenants in it.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use cowheap::Word;
use cowheap_store::cli::{self, CliNode};
use cowheap_store::{Access, PrincipalName, SystemClock, open_store};
use std::path::PathBuf;
use std::sync::Arc;

/// What to do with the store.
#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Makes a store: a directory (created if missing), or the schema in a PostgreSQL
    /// database given as `postgres://...` or `host=... dbname=...`.
    Init {
        /// The store's address.
        store: String,
    },
    /// Stores a base (a cowheap image file or a Smalltalk image) once; prints its
    /// fingerprint.
    PutBase {
        /// The store's address.
        store: String,
        /// The base.
        image: PathBuf,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Records a new tenant of a stored base.
    Create {
        /// The store's address.
        store: String,
        /// The tenant's name.
        tenant: String,
        /// The base's fingerprint (as `put-base` printed it).
        fingerprint: String,
        /// The principal entitled to the tenant [default: the operator alone].
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Adds a principal (a name and its secret) that may be entitled to tenants.
    AddPrincipal {
        /// The store's address.
        store: String,
        /// The principal's name.
        name: String,
        /// Its secret (the acting principal's is `--secret`).
        #[arg(value_name = "SECRET")]
        new_secret: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// The bases and the tenants this access may see.
    Ls {
        /// The store's address.
        store: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Removes the blobs nothing in the store names (states later checkpoints replaced,
    /// segments faulted back in, layers of lost version writes). Operator only; safe beside
    /// running nodes.
    Sweep {
        /// The store's address.
        store: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Claims a tenant for a node (its epoch moves on) and restores it there.
    Resume(NodeArgs),
    /// Writes a mark (a small integer) into a tenant the node holds: a visible change.
    Mark {
        #[command(flatten)]
        node: NodeArgs,
        /// The value: a small integer, from -4611686018427387904 to 4611686018427387903
        /// (63 bits).
        #[arg(
            allow_negative_numbers = true,
            value_parser = clap::value_parser!(i64).range(Word::MIN_INT..=Word::MAX_INT)
        )]
        value: i64,
    },
    /// Writes a held tenant's state to the store and releases it.
    Suspend(NodeArgs),
    /// Names a principal that may commit new versions of a stored base.
    AllowCommit {
        /// The store's address.
        store: String,
        /// The base's fingerprint.
        fingerprint: String,
        /// The principal.
        principal: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Commits the changes of a tenant the node holds as a new version of its base, in one
    /// compare-and-set write to the store (conflicts with later versions are refused).
    Commit(NodeArgs),
    /// Drops the changes of a tenant the node holds and moves it to the newest version of
    /// its base: the way on after a commit that conflicts with another node's.
    Abort(NodeArgs),
    /// The committed versions of a base's history, and who may commit.
    Versions {
        /// The store's address.
        store: String,
        /// The base's fingerprint.
        fingerprint: String,
        /// Only versions above this number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[command(flatten)]
        access: AccessArgs,
    },
}

/// Who acts on the store.
#[derive(Args)]
pub(crate) struct AccessArgs {
    /// Act as this principal [default: the operator].
    #[arg(long, requires = "secret")]
    principal: Option<String>,
    /// The principal's secret (with `--principal` only).
    #[arg(long, requires = "principal")]
    secret: Option<String>,
}

impl AccessArgs {
    fn access(&self) -> Result<Access> {
        Ok(match (&self.principal, &self.secret) {
            (Some(name), Some(secret)) => {
                Access::principal(PrincipalName::new(name)?, secret.clone())
            }
            _ => Access::Operator,
        })
    }
}

/// A command-line node and the tenant it acts on.
#[derive(Args)]
pub(crate) struct NodeArgs {
    /// The store's address.
    store: String,
    /// The tenant.
    tenant: String,
    /// The node's name.
    #[arg(long)]
    node: String,
    /// The node's directory: its base cache and the tenants it holds between commands.
    #[arg(long, value_name = "DIR")]
    node_dir: PathBuf,
    #[command(flatten)]
    access: AccessArgs,
}

impl NodeArgs {
    fn open(&self) -> Result<CliNode> {
        CliNode::open(
            &self.store,
            self.access.access()?,
            &self.node,
            &self.node_dir,
        )
        .with_context(|| format!("opening node {} on {}", self.node, self.store))
    }
}

fn open(store: &str, access: &AccessArgs) -> Result<Arc<dyn cowheap_store::Store>> {
    open_store(store, Arc::new(SystemClock), access.access()?)
        .with_context(|| format!("opening the store {store}"))
}

/// Runs one store command and prints what it says.
pub(crate) fn run(command: StoreCommand) -> Result<()> {
    let out = match command {
        StoreCommand::Init { store } => cli::init(&store)?,
        StoreCommand::PutBase {
            store,
            image,
            access,
        } => {
            let (heap, _) = cowheap::open_base(&image, cowheap::Verification::Full)
                .with_context(|| format!("opening {}", image.display()))?;
            cli::put_base(&*open(&store, &access)?, &heap)?
        }
        StoreCommand::Create {
            store,
            tenant,
            fingerprint,
            owner,
            access,
        } => cli::create(
            &*open(&store, &access)?,
            &tenant,
            &fingerprint,
            owner.as_deref(),
        )?,
        StoreCommand::AddPrincipal {
            store,
            name,
            new_secret,
            access,
        } => cli::add_principal(&*open(&store, &access)?, &name, &new_secret)?,
        StoreCommand::Ls { store, access } => cli::ls(&*open(&store, &access)?)?,
        StoreCommand::Sweep { store, access } => cli::sweep(&*open(&store, &access)?)?,
        StoreCommand::Resume(node) => node.open()?.resume(&node.tenant)?,
        StoreCommand::Mark { node, value } => node.open()?.mark(&node.tenant, value)?,
        StoreCommand::Suspend(node) => node.open()?.suspend(&node.tenant)?,
        StoreCommand::AllowCommit {
            store,
            fingerprint,
            principal,
            access,
        } => cli::allow_commit(&*open(&store, &access)?, &fingerprint, &principal)?,
        StoreCommand::Commit(node) => node.open()?.commit(&node.tenant)?,
        StoreCommand::Abort(node) => node.open()?.abort(&node.tenant)?,
        StoreCommand::Versions {
            store,
            fingerprint,
            after,
            access,
        } => cli::versions(&*open(&store, &access)?, &fingerprint, after)?,
    };
    out!("{out}")?;
    Ok(())
}
