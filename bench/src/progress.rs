//! Progress reports while the bench works.

/// Told what the bench is doing, so a front end can draw a progress bar. Called from the
/// worker threads too, hence `Sync`; calls should be cheap.
///
/// `()` reports nothing:
///
/// ```
/// use cowheap_bench::Progress;
/// let quiet: &dyn Progress = &();
/// quiet.stage("forking", 10);
/// quiet.advance(10);
/// ```
pub trait Progress: Sync {
    /// A new stage named `what`, of `steps` steps.
    fn stage(&self, what: &str, steps: u64);

    /// `steps` more steps of the current stage are done.
    fn advance(&self, steps: u64);
}

impl Progress for () {
    fn stage(&self, _: &str, _: u64) {}

    fn advance(&self, _: u64) {}
}
