// No console window on Windows release builds; the panel is a GUI app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[allow(unsafe_code)]
fn main() {
    // A dashboard needs no GPU compositing, and WebKit's compositor is the panel's largest idle
    // cost: about 90 MB of the web process and a third of its CPU (bench/panel.py). Someone who
    // wants it back sets the variable to 0.
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        // SAFETY: nothing else runs yet; no thread can read the environment concurrently.
        unsafe { std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1") };
    }
    gatehouse_app::run();
}
