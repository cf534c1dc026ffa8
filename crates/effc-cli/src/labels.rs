//! Class names beside `effc run`'s top classes: ImageNet's by default for an output of
//! 1000 classes (1001 with background first, as TF-slim and Keras Lite exports have),
//! a user's file with `--labels FILE`, none with `--labels none`.

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};

/// The 1000 ILSVRC-2012 class names in class-index order (the sorted WordNet ids), one per
/// line, spelled as torchvision's weight metadata spells them.
const IMAGENET: &str = include_str!("../data/imagenet_classes.txt");

/// A labels file larger than this is not a labels file.
const MAX_LABELS_BYTES: u64 = 16 << 20;

/// Where class names come from.
pub enum Labels {
    None,
    /// The built-in ImageNet names: used for outputs of 1000 or 1001 classes.
    ImageNet(Vec<&'static str>),
    /// A user's file, one name per line: used for outputs with exactly that many classes.
    File {
        path: String,
        names: Vec<String>,
    },
}

impl Labels {
    /// `--labels`: absent means ImageNet, `none` turns names off, anything else is a file.
    pub fn from_arg(arg: Option<&Path>) -> Result<Self> {
        let Some(path) = arg else {
            return Ok(Labels::ImageNet(IMAGENET.lines().collect()));
        };
        if path == Path::new("none") {
            return Ok(Labels::None);
        }
        let (file, len) = effc_onnx::files::open_regular(path)?;
        if len > MAX_LABELS_BYTES {
            bail!("{}: {len} bytes is too large for a labels file (at most {MAX_LABELS_BYTES})", path.display());
        }
        let mut text = String::new();
        file.take(MAX_LABELS_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("{}: not a UTF-8 text file of class names ({e})", path.display()))?;
        let names: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
        if names.is_empty() {
            bail!("{}: the labels file has no lines", path.display());
        }
        Ok(Labels::File { path: path.display().to_string(), names })
    }

    /// The name of class `index` among `classes`, if these labels cover that many classes.
    pub fn name(&self, index: usize, classes: usize) -> Option<&str> {
        match self {
            Labels::None => None,
            Labels::ImageNet(names) => match classes {
                1000 => names.get(index).copied(),
                1001 if index == 0 => Some("background"),
                1001 => names.get(index - 1).copied(),
                _ => None,
            },
            Labels::File { names, .. } => (names.len() == classes).then(|| names[index].as_str()),
        }
    }

    /// A user's file that fits none of the printed outputs is a mistake worth one line.
    pub fn check_fits(&self, class_counts: &[usize]) -> Result<()> {
        if let Labels::File { path, names } = self
            && !class_counts.contains(&names.len())
        {
            bail!(
                "{path} has {} class names, but the outputs have {} classes",
                names.len(),
                class_counts.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(())
    }
}

/// A name printed on one terminal line: control characters (newlines, ANSI escapes) escaped.
pub fn printable(name: &str) -> String {
    name.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_names_cover_1000_and_1001_classes() {
        let l = Labels::from_arg(None).unwrap();
        assert_eq!(IMAGENET.lines().count(), 1000);
        assert_eq!(l.name(0, 1000), Some("tench"));
        assert_eq!(l.name(281, 1000), Some("tabby"));
        assert_eq!(l.name(999, 1000), Some("toilet tissue"));
        assert_eq!(l.name(0, 1001), Some("background"));
        assert_eq!(l.name(282, 1001), Some("tabby"));
        assert_eq!(l.name(3, 10), None);
        assert_eq!(Labels::from_arg(Some(Path::new("none"))).unwrap().name(0, 1000), None);
    }

    #[test]
    fn a_user_file_fits_its_own_count_and_control_characters_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("l.txt");
        std::fs::write(&f, "cat\ndog\r\nbird\n").unwrap();
        let l = Labels::from_arg(Some(&f)).unwrap();
        assert_eq!(l.name(1, 3), Some("dog"));
        assert_eq!(l.name(1, 1000), None);
        assert!(l.check_fits(&[3, 7]).is_ok());
        let e = l.check_fits(&[1000]).unwrap_err().to_string();
        assert!(e.contains("has 3 class names, but the outputs have 1000 classes"), "{e}");
        assert_eq!(printable("a\x1b[2Kb\nc"), "a\\u{1b}[2Kb\\nc");
        assert!(Labels::from_arg(Some(dir.path())).is_err());
    }
}
