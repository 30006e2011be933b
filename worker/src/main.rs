//! `paddock-worker`: runs executions in warm nsjail slots.
fn main() {
    println!("paddock-worker");
}
