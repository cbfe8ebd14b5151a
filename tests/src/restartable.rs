//! What the fault and coherence tests need of a test server they take down and bring back,
//! whichever server it is.

use crate::postgres_server::PostgresServer;
use crate::redis_server::RedisServer;

/// A server a test can take down and bring back on the same address.
pub trait Restartable {
    /// Takes the server down.
    fn stop(&mut self);
    /// Brings it back, with its data.
    fn restart(&mut self);
}

impl Restartable for RedisServer {
    fn stop(&mut self) {
        RedisServer::stop(self);
    }
    fn restart(&mut self) {
        RedisServer::restart(self);
    }
}

impl Restartable for PostgresServer {
    fn stop(&mut self) {
        PostgresServer::stop(self);
    }
    fn restart(&mut self) {
        PostgresServer::restart(self);
    }
}
