//! `paddock-edge`: the front door (TLS, routing, auth, MCP servers, control state).
fn main() {
    println!("paddock-edge");
}
