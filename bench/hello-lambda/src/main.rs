//! The cold-start floor the benchmark measures the functions against: the same runtime crate,
//! features and release profile, and no work of its own.

use lambda_http::{run, service_fn, Error, Request};

async fn hello(_: Request) -> Result<&'static str, Error> {
    Ok("hello")
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
