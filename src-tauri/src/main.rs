// No console window on Windows release builds; the panel is a GUI app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    gatehouse_app::run();
}
