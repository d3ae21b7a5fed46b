//! The ONNX Runtime sessions of one model version, made as requests need them and lent one at a time.

use super::*;

/// The sessions of one model version: one made at load, more (up to `limit`) the first time
/// that many requests run at once, so an idle server holds one copy of each model (a second
/// magika session is 8 MB) and a busy one still runs requests side by side. The semaphore counts
/// sessions that are idle or may still be made, so a lease taken under a permit always gets one;
/// the mutex is held only to push or pop, never during a run or a build.
pub(super) struct SessionPool {
    pub(super) idle: Mutex<Vec<Session>>,
    pub(super) available: Arc<Semaphore>,
    pub(super) build: Box<dyn Fn() -> Result<Session, String> + Send + Sync>,
}

impl SessionPool {
    pub(super) fn new(
        first: Session,
        limit: usize,
        build: Box<dyn Fn() -> Result<Session, String> + Send + Sync>,
    ) -> SessionPool {
        SessionPool {
            available: Arc::new(Semaphore::new(limit.max(1))),
            idle: Mutex::new(vec![first]),
            build,
        }
    }

    /// An idle session, or a new one when every session made so far is running (only possible
    /// while fewer than `limit` exist: each running session holds a permit).
    pub(super) fn lease(&self) -> Result<Lease<'_>, String> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let session = match idle {
            Some(session) => session,
            None => (self.build)()?,
        };
        Ok(Lease {
            pool: self,
            session: Some(session),
        })
    }
}

/// A borrowed session, returned to the pool on drop (also when a run panics).
pub(super) struct Lease<'a> {
    pub(super) pool: &'a SessionPool,
    pub(super) session: Option<Session>,
}

impl Lease<'_> {
    pub(super) fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(session);
        }
    }
}
