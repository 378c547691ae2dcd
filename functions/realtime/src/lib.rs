//! The WebSocket API's functions. Browsers cannot set headers on a WebSocket, so a client
//! connects with its token in the query (`wss://…/{stage}?token=…`) and the authorizer checks
//! it on `$connect`, as the HTTP api's JWT authorizer checks the `Authorization` header. The
//! routes then keep the connections table: `$connect` records whose feed the connection
//! listens to, `$disconnect` forgets it, `$default` answers `{"action":"ping"}` (a client's
//! keep-alive: API Gateway closes a connection idle for ten minutes).
//!
//! The socket only listens: reads and other writes stay on the HTTP api.

pub mod authorizer;
pub mod routes;

pub use authorizer::{Verdict, authorize};
pub use routes::Routes;
