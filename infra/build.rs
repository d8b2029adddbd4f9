// The migrations are embedded at compile time (`refinery::embed_migrations!`): build again when
// one is added or changed, not only when the code that embeds them changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
