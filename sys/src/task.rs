//! The one way actors run blocking work (syscalls, tools, files) from async code.

/// Runs `f` on tokio's blocking pool in the caller's tracing span and waits for it.
///
/// The error is tokio's: the task panicked ([`tokio::task::JoinError::is_panic`], resume it
/// with [`tokio::task::JoinError::into_panic`] to let the panic kill the actor) or the
/// runtime is shutting down. Each module maps it into its own error type in one line.
/// Must be called inside a tokio runtime.
pub async fn blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs_off_the_runtime_and_reports_panics() {
        assert_eq!(super::blocking(|| 2 + 2).await.unwrap(), 4);
        let r: Result<(), _> = super::blocking(|| panic!("boom")).await;
        let err = r.unwrap_err();
        assert!(err.is_panic());
    }
}
