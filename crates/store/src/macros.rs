/// Runs `$body` with `$conn` bound to the backend connection of a scope's transaction.
/// The body is expanded once per backend, so it is type-checked against each.
macro_rules! with_conn {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::scope::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::scope::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
