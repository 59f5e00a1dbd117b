//! A spec's one canonical text ([`VariantSpec`]'s `Display`), which is also its serde
//! form and its JSON Schema.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::{Dpr, Fit, FocalPoint, Format, Gravity, VariantSpec, KEYS};

/// Thousandths as the shortest decimal: `250` → `0.25`, `1000` → `1`, `0` → `0`.
fn fmt_fraction(thousandths: u16) -> String {
    let whole = thousandths / 1000;
    let frac = thousandths % 1000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl fmt::Display for VariantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::with_capacity(KEYS.len());
        if let Some(w) = self.width {
            parts.push(format!("w={w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("h={h}"));
        }
        if self.fit != Fit::default() {
            parts.push(format!("fit={}", self.fit.as_str()));
        }
        if self.gravity != Gravity::default() {
            parts.push(format!("g={}", self.gravity.as_str()));
        }
        if self.format != Format::default() {
            parts.push(format!("fm={}", self.format.as_str()));
        }
        if let Some(q) = self.quality {
            parts.push(format!("q={q}"));
        }
        if let Some(bg) = self.background {
            parts.push(format!("bg={bg}"));
        }
        if self.enlarge {
            parts.push("enlarge=true".to_string());
        }
        if let Some(FocalPoint { x, y }) = self.focus {
            parts.push(format!("fx={}", fmt_fraction(x)));
            parts.push(format!("fy={}", fmt_fraction(y)));
        }
        if self.dpr != Dpr::ONE {
            parts.push(format!("dpr={}", self.dpr));
        }
        if self.progressive {
            parts.push("pj=true".to_string());
        }
        if self.palette {
            parts.push("palette=true".to_string());
        }
        if self.lossless {
            parts.push("lossless=true".to_string());
        }
        f.write_str(&parts.join(","))
    }
}

impl Serialize for VariantSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VariantSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for VariantSpec {
    fn schema_name() -> String {
        "VariantSpec".to_string()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            ..Default::default()
        };
        let keys = KEYS.join("|");
        schema.string().pattern = Some(format!("^({keys})=[a-z0-9.]+(,({keys})=[a-z0-9.]+)*$"));
        schema.metadata().description = Some(
            "Variant spec, e.g. `w=320,h=320,fit=cover,fm=webp,q=75`. Keys, in canonical order: \
             w, h (1-16383), fit (cover|contain|fill|inside|outside, default inside), \
             g (centre|north|northeast|east|southeast|south|southwest|west|northwest, or \
             attention|entropy with fit=cover), fm (jpeg|png|webp|avif|gif|original), \
             q (1-100), bg (rrggbb), enlarge (true|false), fx, fy (focal point 0-1, both, \
             fit=cover only), dpr (1-4, one decimal), pj (true: progressive JPEG, fm=jpeg), \
             palette (true: 8-bit palette PNG, fm=png), lossless (true: lossless WebP, fm=webp)."
                .into(),
        );
        schema.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_have_a_fixed_order_after_the_old_ones() {
        let spec: VariantSpec =
            "lossless=true,dpr=2,fm=webp,w=100,h=50,fy=0.500,fx=0.25,fit=cover,q=90"
                .parse()
                .unwrap();
        assert_eq!(
            spec.focus,
            Some(FocalPoint { x: 250, y: 500 }),
            "thousandths"
        );
        assert_eq!(spec.dpr.tenths(), 20);
        assert_eq!(
            spec.to_string(),
            "w=100,h=50,fit=cover,fm=webp,q=90,fx=0.25,fy=0.5,dpr=2,lossless=true"
        );
        let spec: VariantSpec = "palette=true,fm=png,w=10,dpr=1.5".parse().unwrap();
        assert_eq!(spec.to_string(), "w=10,fm=png,dpr=1.5,palette=true");
        let spec: VariantSpec = "pj=true,fm=jpeg,w=10,g=attention,h=10,fit=cover"
            .parse()
            .unwrap();
        assert_eq!(
            spec.to_string(),
            "w=10,h=10,fit=cover,g=attention,fm=jpeg,pj=true"
        );
        // Defaults of the new keys are elided.
        let spec: VariantSpec = "w=10,dpr=1,pj=false,palette=false,lossless=false"
            .parse()
            .unwrap();
        assert_eq!(spec.to_string(), "w=10");
        assert_eq!(spec, "w=10".parse().unwrap());
    }
}
