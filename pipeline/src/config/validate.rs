//! The rules types cannot express, checked once the values are read ([`Settings::validate`]).

use rendition_image::spec::{Format, VariantSpec};

use super::{is_preset_name, ConfigError, Settings};

impl Settings {
    /// Checks rules types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |msg: String| Err(ConfigError::Rule(msg));
        // `/latest/…` is the redirect route of `serve` and the Lambda.
        if self.storage.derived_prefix.starts_with("latest/") {
            return rule(format!(
                "storage.derived_prefix must not start with \"latest/\" (the /latest/ route), got {:?}",
                self.storage.derived_prefix
            ));
        }
        self.events.validate()?;
        self.cdn.validate()?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            if !endpoint.starts_with("http://") || endpoint.len() <= "http://".len() {
                return rule(format!(
                    "telemetry.otlp_endpoint must be an http:// URL of a collector (got {endpoint:?})"
                ));
            }
        }
        let s = &self.storage;
        for (name, prefix) in [
            ("storage.source_prefix", &s.source_prefix),
            ("storage.derived_prefix", &s.derived_prefix),
            ("storage.failed_prefix", &s.failed_prefix),
        ] {
            if prefix.len() < 2
                || !prefix.ends_with('/')
                || prefix.starts_with('/')
                || prefix.contains("..")
            {
                return rule(format!(
                    "{name} must be a relative folder ending in '/', got {prefix:?}"
                ));
            }
        }
        let prefixes = [&s.source_prefix, &s.derived_prefix, &s.failed_prefix];
        for (i, a) in prefixes.iter().enumerate() {
            for b in prefixes.iter().skip(i + 1) {
                if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                    return rule(format!(
                        "storage prefixes must not overlap: {a:?} and {b:?}"
                    ));
                }
            }
        }
        if self.limits.max_input_bytes == 0
            || self.limits.max_input_pixels == 0
            || self.limits.max_output_dimension == 0
            || self.limits.max_frames == 0
            || self.limits.max_decoded_bytes == 0
            || self.limits.max_scans == 0
        {
            return rule("limits must be greater than zero".into());
        }
        if self.render.avif_effort > 9 {
            return rule(format!(
                "render.avif_effort must be 0-9, got {}",
                self.render.avif_effort
            ));
        }
        if self.render.vips_threads == 0 {
            return rule("render.vips_threads must be at least 1".into());
        }
        let r = &self.render;
        if r.max_memory_mb < 128 || r.max_cpu_secs == 0 || r.deadline_secs == 0 {
            return rule(
                "render: max_memory_mb must be at least 128, max_cpu_secs and deadline_secs at least 1"
                    .into(),
            );
        }
        if r.recycle_after_jobs == 0 {
            return rule("render.recycle_after_jobs must be at least 1".into());
        }
        let u = &self.urls;
        if u.scheme != "https" && u.scheme != "http" {
            return rule(format!(
                "urls.scheme must be \"https\" or \"http\", got {:?}",
                u.scheme
            ));
        }
        for host in &u.hosts {
            if host.is_empty()
                || host.chars().any(|c| {
                    matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
                })
            {
                return rule(format!(
                    "urls.hosts entries must be host names (optionally with a port), got {host:?}"
                ));
            }
        }
        if let Some(i) = u.signing_keys.iter().position(|k| k.len() < 32) {
            return rule(format!("urls.signing_keys[{i}] is shorter than 32 bytes"));
        }
        if u.default_ttl_secs == Some(0) {
            return rule("urls.default_ttl_secs must be at least 1 (or unset)".into());
        }
        for (name, preset) in &self.presets {
            if !is_preset_name(name) {
                return rule(format!(
                    "preset name {name:?} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                ));
            }
            if !preset.formats.is_empty() {
                if !matches!(preset.spec.format, Format::Original | Format::Auto) {
                    return rule(format!(
                        "preset {name:?}: a preset with `formats` has no `fm` in its spec (or fm=auto)"
                    ));
                }
                for (i, f) in preset.formats.iter().enumerate() {
                    if matches!(f, Format::Original | Format::Auto) {
                        return rule(format!(
                            "preset {name:?}: formats[{i}] must be jpeg, png, webp, avif or gif"
                        ));
                    }
                    if preset.formats[..i].contains(f) {
                        return rule(format!(
                            "preset {name:?}: {} is listed twice in formats",
                            f.as_str()
                        ));
                    }
                }
                for &f in &preset.formats {
                    if let Err(e) = preset.spec_in(f).to_string().parse::<VariantSpec>() {
                        return rule(format!("preset {name:?} as {}: {e}", f.as_str()));
                    }
                }
            }
            for (axis, len) in [("w", preset.spec.width), ("h", preset.spec.height)] {
                let len = len.map(|l| preset.spec.dpr.apply(l));
                if len.is_some_and(|l| l > self.limits.max_output_dimension) {
                    return rule(format!(
                        "preset {name:?}: {axis} (× dpr) exceeds limits.max_output_dimension ({})",
                        self.limits.max_output_dimension
                    ));
                }
            }
        }
        Ok(())
    }
}
