//! Fresh ids: a new, regenerated or rotated session takes a random id that no record holds.

use std::future::Future;

use crate::error::{Error, Result};
use crate::id::SessionId;

/// How many fresh ids a save tries when the store reports one as taken. A collision of
/// 256-bit random ids does not happen; a store that keeps saying "taken" is broken.
pub(super) const ID_ATTEMPTS: usize = 3;

/// Runs `attempt` (a store call that claims a key) with a freshly generated id, again with
/// another one while the store answers [`Error::AlreadyExists`], at most [`ID_ATTEMPTS`]
/// times in all.
///
/// Returns the last id tried with its attempt's result: the first result that is not
/// `AlreadyExists`, or `AlreadyExists` when every id was taken. The caller decides what
/// each result means for its operation.
///
/// # Errors
/// [`Error::Rng`] when no id could be generated (then `attempt` was not run for it).
pub(super) async fn with_fresh_id<T, F, Fut>(mut attempt: F) -> Result<(SessionId, Result<T>)>
where
    F: FnMut(&SessionId) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        let id = SessionId::generate()?;
        let result = attempt(&id).await;
        if tries < ID_ATTEMPTS && matches!(result, Err(Error::AlreadyExists)) {
            tries += 1;
            continue;
        }
        return Ok((id, result));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;

    /// Runs `with_fresh_id` with an attempt that answers from `answers` in turn, and returns
    /// the ids it was given, the id returned, and the result.
    fn run(answers: Vec<Result<u8>>) -> (Vec<SessionId>, SessionId, Result<u8>) {
        let answers = Mutex::new(answers.into_iter());
        let seen = Mutex::new(Vec::new());
        let (id, result) = block_on(with_fresh_id(|id| {
            seen.lock().unwrap().push(id.clone());
            let answer = answers.lock().unwrap().next().expect("an attempt too many");
            async move { answer }
        }))
        .unwrap();
        (seen.into_inner().unwrap(), id, result)
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn first_free_id_is_taken_at_once() {
        let (tried, id, result) = run(vec![Ok(7)]);
        assert_eq!(tried, [id]);
        assert_eq!(result.unwrap(), 7);
    }

    #[test]
    fn retries_with_a_new_id_while_taken() {
        let (tried, id, result) = run(vec![Err(Error::AlreadyExists), Ok(7)]);
        assert_eq!(tried.len(), 2);
        assert_ne!(tried[0], tried[1], "a retry must use another id");
        assert_eq!(tried[1], id, "the id returned is the one that succeeded");
        assert_eq!(result.unwrap(), 7);
    }

    #[test]
    fn gives_up_after_id_attempts() {
        let answers = (0..ID_ATTEMPTS)
            .map(|_| Err(Error::AlreadyExists))
            .collect();
        let (tried, id, result) = run(answers);
        assert_eq!(tried.len(), ID_ATTEMPTS);
        assert_eq!(tried.iter().collect::<HashSet<_>>().len(), ID_ATTEMPTS);
        assert_eq!(tried.last(), Some(&id));
        assert!(matches!(result, Err(Error::AlreadyExists)), "{result:?}");
    }

    #[test]
    fn other_errors_are_not_retried() {
        let (tried, _, result) = run(vec![Err(Error::Gone)]);
        assert_eq!(tried.len(), 1);
        assert!(matches!(result, Err(Error::Gone)), "{result:?}");
    }
}
