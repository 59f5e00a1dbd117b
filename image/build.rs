//! Links libvips (and GLib/GObject, which its API exposes) through pkg-config.
fn main() {
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("8.14")
        .probe("vips")
    {
        panic!(
            "libvips >= 8.14 not found through pkg-config ({e}). On Debian/Ubuntu: \
             apt-get install libvips-dev pkg-config (scripts/install-deps.sh does it)"
        );
    }
    pkg_config::probe_library("gobject-2.0").expect("gobject-2.0 via pkg-config");
}
