//! Inputs for running a model: .npy files, images and seeded noise.

use std::path::Path;

use effc_ir::{Error, ErrorKind, Result, Tensor};

/// ImageNet channel means and standard deviations, as torchvision normalises.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Reads an input for a tensor of `shape`: an .npy array of exactly that shape, or an
/// image (PNG/JPEG) for an NCHW shape with 3 channels, resized and ImageNet-normalised.
pub fn load(path: &Path, shape: &[usize]) -> Result<Tensor> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    // Both readers give `shape` or an error: .npy checks its header against it before
    // reading, an image is resized to it.
    if ext == "npy" { load_npy(path, shape) } else { load_image(path, shape) }
}

/// The shape an .npy file's header declares, read without its data; `None` for other
/// files (an image takes the shape of the input it fills).
pub fn file_shape(path: &Path) -> Result<Option<Vec<usize>>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext != "npy" {
        return Ok(None);
    }
    Ok(Some(npy_header(path)?.shape))
}

/// An .npy file opened and its header read: the data starts at `data_start`.
struct NpyHeader {
    file: std::fs::File,
    len: u64,
    data_start: u64,
    shape: Vec<usize>,
}

/// Reads an .npy header, checking its length against the file's before reading it.
fn npy_header(path: &Path) -> Result<NpyHeader> {
    use std::io::{Read, Seek};
    let bad = |what: String| Error::invalid(format!("{}: {what}", path.display()));
    let io = |source| Error::new(ErrorKind::Io { path: path.to_path_buf(), source });
    let (mut file, len) = effc_onnx::files::open_regular(path)?;
    let mut prefix = [0u8; 12];
    file.read_exact(&mut prefix).map_err(|_| bad("too short for an .npy file".into()))?;
    let (header_len, header_start) = match prefix {
        [0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b, ..] => (u16::from_le_bytes([a, b]) as u64, 10),
        [0x93, b'N', b'U', b'M', b'P', b'Y', 2 | 3, _, a, b, c, d] => (u32::from_le_bytes([a, b, c, d]) as u64, 12),
        _ => return Err(bad("not an .npy file".into())),
    };
    if header_len > 1 << 16 || header_start + header_len > len {
        return Err(bad(format!("an .npy header of {header_len} bytes in a {len}-byte file")));
    }
    file.seek(std::io::SeekFrom::Start(header_start)).map_err(io)?;
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header = String::from_utf8_lossy(&header);
    let shape = npy_header_shape(&header).ok_or_else(|| bad(format!("no shape in the .npy header {header:?}")))?;
    Ok(NpyHeader { file, len, data_start: header_start + header_len, shape })
}

/// Reads an f32 .npy file of shape `want`. The header's shape is checked against `want`
/// and the file's length before the reader allocates anything from it (a 128-byte file can
/// claim 10^12 elements).
fn load_npy(path: &Path, want: &[usize]) -> Result<Tensor> {
    use std::io::Seek;
    let bad = |what: String| Error::invalid(format!("{}: {what}", path.display()));
    let io = |source| Error::new(ErrorKind::Io { path: path.to_path_buf(), source });
    let NpyHeader { mut file, len, data_start, shape } = npy_header(path)?;
    if shape != want {
        return Err(Error::invalid(format!(
            "{} has shape {shape:?}, but the model input needs {want:?}",
            path.display()
        )));
    }
    let data_bytes = effc_ir::checked_numel(&shape)?.saturating_mul(4) as u64;
    if data_start + data_bytes > len {
        return Err(bad(format!("the header claims {data_bytes} bytes of data but the file has {len} bytes")));
    }
    file.rewind().map_err(io)?;
    let arr: ndarray::ArrayD<f32> = ndarray_npy::ReadNpyExt::read_npy(file)
        .map_err(|e| Error::new(ErrorKind::Other(format!("{}: cannot read as f32 .npy: {e}", path.display()))))?;
    let shape = arr.shape().to_vec();
    Tensor::from_f32(shape, arr.iter().copied().collect())
}

/// The `shape` tuple of an .npy header (`{'descr': '<f4', 'fortran_order': False,
/// 'shape': (1, 3, 224, 224), }`).
fn npy_header_shape(header: &str) -> Option<Vec<usize>> {
    let rest = header.split_once("'shape':")?.1.trim_start().strip_prefix('(')?;
    let inside = rest.split_once(')')?.0;
    inside.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|d| d.parse().ok()).collect()
}

fn load_image(path: &Path, shape: &[usize]) -> Result<Tensor> {
    let [n, 3, h, w] = shape else {
        return Err(Error::invalid(format!("an image cannot fill an input of shape {shape:?} (needs N×3×H×W)")));
    };
    let (file, _) = effc_onnx::files::open_regular(path)?;
    let cannot =
        |e: &dyn std::fmt::Display| Error::new(ErrorKind::Other(format!("{}: cannot read image: {e}", path.display())));
    let reader =
        image::ImageReader::new(std::io::BufReader::new(file)).with_guessed_format().map_err(|e| cannot(&e))?;
    let img = reader.decode().map_err(|e| cannot(&e))?.to_rgb8();
    let img = image::imageops::resize(&img, *w as u32, *h as u32, image::imageops::FilterType::Triangle);
    let mut data = vec![0f32; n * 3 * h * w];
    for (x, y, px) in img.enumerate_pixels() {
        for c in 0..3 {
            let v = (px[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            for b in 0..*n {
                data[((b * 3 + c) * h + y as usize) * w + x as usize] = v;
            }
        }
    }
    Tensor::from_f32(shape.to_vec(), data)
}

/// Deterministic standard-normal noise (xorshift + Box–Muller), for seeded checks.
pub fn seeded_noise(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let (u1, u2) = (next(), next());
        let r = (-2.0 * u1.ln()).sqrt();
        v.push((r * (std::f64::consts::TAU * u2).cos()) as f32);
        v.push((r * (std::f64::consts::TAU * u2).sin()) as f32);
    }
    v.truncate(n);
    Tensor::from_f32(shape.to_vec(), v).expect("length matches shape")
}

/// Writes a tensor as f32 .npy.
pub fn save_npy(path: &Path, t: &Tensor) -> Result<()> {
    let arr =
        ndarray::ArrayD::from_shape_vec(t.shape().to_vec(), t.to_f32_vec()).map_err(|e| Error::other(e.to_string()))?;
    ndarray_npy::write_npy(path, &arr)
        .map_err(|e| Error::new(ErrorKind::Other(format!("{}: cannot write: {e}", path.display()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A solid-colour PNG is read through the opened file, resized and normalised:
    /// every value of channel c is (colour[c]/255 − mean[c]) / std[c].
    #[test]
    fn a_png_fills_an_nchw_input() {
        let path = std::env::temp_dir().join(format!("effc-input-{}.png", std::process::id()));
        let colour = [200u8, 100, 50];
        image::RgbImage::from_pixel(3, 2, image::Rgb(colour)).save(&path).unwrap();
        let t = load(&path, &[1, 3, 4, 4]);
        std::fs::remove_file(&path).unwrap();
        let v = t.unwrap().to_f32_vec();
        for (c, plane) in v.chunks(16).enumerate() {
            let want = (colour[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            assert!(plane.iter().all(|&x| (x - want).abs() < 1e-6), "channel {c}: {plane:?} vs {want}");
        }
    }
}
