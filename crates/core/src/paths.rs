//! Where Gatehouse keeps its files.
//!
//! Two roots: the *config* directory (settings, later keys and certificates — small, private files)
//! and the *data* directory (the ONNX Runtime library and the model repository that setup installs).
//! `GATEHOUSE_HOME` relocates the config directory and `GATEHOUSE_DATA` the data directory, which is
//! how tests get a private world of their own.

use std::path::{Path, PathBuf};

/// The resolved locations for one Gatehouse installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// Resolves the directories from the process environment.
    pub fn from_env() -> Paths {
        Self::resolve(|name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Resolves the directories from a lookup function, so tests can pass their own environment.
    pub fn resolve(var: impl Fn(&str) -> Option<PathBuf>) -> Paths {
        let home = || {
            var("HOME")
                .or_else(dirs::home_dir)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let config_dir = var("GATEHOUSE_HOME").unwrap_or_else(|| {
            var("XDG_CONFIG_HOME")
                .unwrap_or_else(|| home().join(".config"))
                .join("gatehouse")
        });
        let data_dir = var("GATEHOUSE_DATA").unwrap_or_else(|| {
            var("XDG_DATA_HOME")
                .unwrap_or_else(|| home().join(".local/share"))
                .join("gatehouse")
        });
        Paths { config_dir, data_dir }
    }

    pub fn settings_file(&self) -> PathBuf {
        self.config_dir.join("settings.toml")
    }

    pub fn keys_file(&self) -> PathBuf {
        self.config_dir.join("keys.toml")
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.config_dir.join("certs")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.config_dir.join("audit").join("audit.jsonl")
    }

    /// The model repository setup installs the default models into; for an installed package
    /// that has none there yet, the models the package carries.
    pub fn default_models_dir(&self) -> PathBuf {
        let own = self.data_dir.join("models");
        if own.is_dir() {
            return own;
        }
        packaged_dir().map_or(own, |dir| dir.join("models"))
    }

    /// The ONNX Runtime library setup installs (taken from the `onnxruntime` wheel); for an
    /// installed package, the one it carries.
    pub fn default_onnxruntime_library(&self) -> PathBuf {
        let own = self.data_dir.join("runtime").join("libonnxruntime.so");
        if own.exists() {
            return own;
        }
        packaged_dir().map_or(own, |dir| dir.join("runtime").join("libonnxruntime.so"))
    }
}

/// What an installed package carries (ONNX Runtime, the default models, licences): Tauri's
/// bundler puts them in `<prefix>/lib/Gatehouse` beside `<prefix>/bin/gatehouse` and
/// `gatehouse-app`. `None` when this program was not installed that way (a build from source).
pub fn packaged_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("lib").join("Gatehouse");
    dir.join("runtime").is_dir().then_some(dir)
}

/// Shows a path the way a person typed it, for messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
        let map: HashMap<String, PathBuf> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn gatehouse_home_relocates_the_config_directory() {
        let paths = Paths::resolve(lookup(&[("HOME", "/h"), ("GATEHOUSE_HOME", "/elsewhere")]));
        assert_eq!(paths.config_dir, PathBuf::from("/elsewhere"));
        assert_eq!(paths.settings_file(), PathBuf::from("/elsewhere/settings.toml"));
        assert_eq!(paths.data_dir, PathBuf::from("/h/.local/share/gatehouse"));
    }

    #[test]
    fn xdg_directories_are_followed() {
        let paths = Paths::resolve(lookup(&[("XDG_CONFIG_HOME", "/c"), ("XDG_DATA_HOME", "/d")]));
        assert_eq!(paths.config_dir, PathBuf::from("/c/gatehouse"));
        assert_eq!(paths.default_models_dir(), PathBuf::from("/d/gatehouse/models"));
        assert_eq!(
            paths.default_onnxruntime_library(),
            PathBuf::from("/d/gatehouse/runtime/libonnxruntime.so")
        );
    }
}
