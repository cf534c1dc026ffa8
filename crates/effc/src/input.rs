//! Inputs for running a model: .npy files, images and seeded noise.

use std::path::Path;

use effc_ir::{DType, Error, ErrorKind, Result, Tensor, TensorData};

/// ImageNet channel means and standard deviations, as torchvision normalises.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Reads an input for a tensor of `shape` and `dtype`: an .npy array of exactly that shape
/// and type, or an image (PNG/JPEG), resized: for an f32 NCHW input with 3 channels
/// ImageNet-normalised, for a uint8 input (a quantized model's) its raw pixels, NCHW or NHWC.
pub fn load(path: &Path, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    // Both readers give `shape` or an error: .npy checks its header against it before
    // reading, an image is resized to it.
    if ext == "npy" { load_npy(path, shape, dtype) } else { load_image(path, shape, dtype) }
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
    /// The element type, numpy's `descr` (`<f4`, `|u1`, ...).
    descr: String,
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
    let descr = npy_header_descr(&header).ok_or_else(|| bad(format!("no descr in the .npy header {header:?}")))?;
    Ok(NpyHeader { file, len, data_start: header_start + header_len, shape, descr })
}

/// numpy's little-endian `descr` for a dtype, as `save_npy` writes it.
fn npy_descr(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    }
}

/// Reads an .npy file of shape `want` and element type `dtype`. The header's shape and
/// type are checked against them and the file's length before the reader allocates
/// anything from it (a 128-byte file can claim 10^12 elements).
fn load_npy(path: &Path, want: &[usize], dtype: DType) -> Result<Tensor> {
    use std::io::Seek;
    let bad = |what: String| Error::invalid(format!("{}: {what}", path.display()));
    let io = |source| Error::new(ErrorKind::Io { path: path.to_path_buf(), source });
    let NpyHeader { mut file, len, data_start, shape, descr } = npy_header(path)?;
    if shape != want {
        return Err(Error::invalid(format!(
            "{} has shape {shape:?}, but the model input needs {want:?}",
            path.display()
        )));
    }
    // `=` and `<` both mean little-endian on the hosts effc runs on; one-byte types write `|`.
    let native = descr.replacen('=', "<", 1);
    let same_bytes = dtype.size_bytes() == 1 && native.get(1..) == npy_descr(dtype).get(1..);
    if native != npy_descr(dtype) && !same_bytes {
        return Err(bad(format!(
            "holds '{descr}' data, but the model input is {dtype} (an .npy of '{}')",
            npy_descr(dtype)
        )));
    }
    let data_bytes = effc_ir::checked_numel(&shape)?.saturating_mul(dtype.size_bytes()) as u64;
    if data_start + data_bytes > len {
        return Err(bad(format!("the header claims {data_bytes} bytes of data but the file has {len} bytes")));
    }
    file.rewind().map_err(io)?;
    let cannot = |e: ndarray_npy::ReadNpyError| {
        Error::new(ErrorKind::Other(format!("{}: cannot read as {dtype} .npy: {e}", path.display())))
    };
    fn read<T: ndarray_npy::ReadableElement + Copy>(
        file: std::fs::File,
        cannot: impl Fn(ndarray_npy::ReadNpyError) -> Error,
    ) -> Result<std::sync::Arc<[T]>> {
        let arr: ndarray::ArrayD<T> = ndarray_npy::ReadNpyExt::read_npy(file).map_err(cannot)?;
        Ok(arr.iter().copied().collect())
    }
    let data = match dtype {
        DType::F32 => TensorData::F32(read(file, cannot)?),
        DType::F64 => TensorData::F64(read(file, cannot)?),
        DType::I64 => TensorData::I64(read(file, cannot)?),
        DType::I32 => TensorData::I32(read(file, cannot)?),
        DType::I8 => TensorData::I8(read(file, cannot)?),
        DType::U8 => TensorData::U8(read(file, cannot)?),
        DType::Bool => TensorData::Bool(read(file, cannot)?),
    };
    Tensor::new(shape, data)
}

/// The `descr` string of an .npy header (`'<f4'`).
fn npy_header_descr(header: &str) -> Option<String> {
    let rest = header.split_once("'descr':")?.1.trim_start().strip_prefix('\'')?;
    Some(rest.split_once('\'')?.0.to_string())
}

/// The `shape` tuple of an .npy header (`{'descr': '<f4', 'fortran_order': False,
/// 'shape': (1, 3, 224, 224), }`).
fn npy_header_shape(header: &str) -> Option<Vec<usize>> {
    let rest = header.split_once("'shape':")?.1.trim_start().strip_prefix('(')?;
    let inside = rest.split_once(')')?.0;
    inside.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|d| d.parse().ok()).collect()
}

fn load_image(path: &Path, shape: &[usize], dtype: DType) -> Result<Tensor> {
    // Raw pixels for a uint8 input, channels first or last; normalised floats for f32 NCHW.
    let (n, h, w, channels_last) = match (dtype, shape) {
        (DType::F32, &[n, 3, h, w]) => (n, h, w, false),
        (DType::U8, &[n, 3, h, w]) => (n, h, w, false),
        (DType::U8, &[n, h, w, 3]) => (n, h, w, true),
        _ => {
            return Err(Error::invalid(format!(
                "an image cannot fill a {dtype} input of shape {shape:?} (needs f32 N×3×H×W, or uint8 N×3×H×W \
                 or N×H×W×3; give an .npy)"
            )));
        }
    };
    let pixels = decode_resized(path, w, h)?;
    let at = |b: usize, c: usize, y: usize, x: usize| {
        if channels_last { ((b * h + y) * w + x) * 3 + c } else { ((b * 3 + c) * h + y) * w + x }
    };
    if dtype == DType::U8 {
        let mut data = vec![0u8; n * 3 * h * w];
        for (i, px) in pixels.iter().enumerate() {
            for (c, b) in (0..3).flat_map(|c| (0..n).map(move |b| (c, b))) {
                data[at(b, c, i / w, i % w)] = px[c];
            }
        }
        return Tensor::new(shape.to_vec(), TensorData::U8(data.into()));
    }
    let mut data = vec![0f32; n * 3 * h * w];
    for (i, px) in pixels.iter().enumerate() {
        for c in 0..3 {
            let v = (px[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            for b in 0..n {
                data[at(b, c, i / w, i % w)] = v;
            }
        }
    }
    Tensor::from_f32(shape.to_vec(), data)
}

/// The image file at `path` resized to w × h: its RGB pixels, row by row.
#[cfg(feature = "images")]
fn decode_resized(path: &Path, w: usize, h: usize) -> Result<Vec<[u8; 3]>> {
    let (file, _) = effc_onnx::files::open_regular(path)?;
    let cannot =
        |e: &dyn std::fmt::Display| Error::new(ErrorKind::Other(format!("{}: cannot read image: {e}", path.display())));
    let reader =
        image::ImageReader::new(std::io::BufReader::new(file)).with_guessed_format().map_err(|e| cannot(&e))?;
    let img = reader.decode().map_err(|e| cannot(&e))?.to_rgb8();
    let img = image::imageops::resize(&img, w as u32, h as u32, image::imageops::FilterType::Triangle);
    Ok(img.pixels().map(|px| px.0).collect())
}

/// Without the `images` feature (the fuzz targets need no decoder) an image is an error.
#[cfg(not(feature = "images"))]
fn decode_resized(path: &Path, _w: usize, _h: usize) -> Result<Vec<[u8; 3]>> {
    Err(Error::unsupported(format!(
        "{}: this build of effc reads no images (its `images` feature is off); give an .npy",
        path.display()
    )))
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

/// Seeded input data of `dtype`: standard-normal noise for floats (see [`seeded_noise`]),
/// uniform over every value for uint8 and int8 (a quantized model's raw input). Other
/// integer inputs (indices, shapes) have no meaningful noise: they need a file.
pub fn seeded(shape: &[usize], dtype: DType, seed: u64) -> Result<Tensor> {
    let noise = seeded_noise(shape, seed);
    let v = noise.as_f32().expect("noise is f32");
    // A logistic squash of the noise spreads it over every level (roughly uniformly).
    let level = |x: f32| (256.0 / (1.0 + (-1.702 * x).exp())).floor().min(255.0) as u8;
    let data = match dtype {
        DType::F32 => return Ok(noise),
        DType::F64 => TensorData::F64(v.iter().map(|&x| x as f64).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| level(x)).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| (level(x) as i16 - 128) as i8).collect()),
        DType::I64 | DType::I32 | DType::Bool => {
            return Err(Error::invalid(format!("no seeded data for a {dtype} input of shape {shape:?}: give a file")));
        }
    };
    Tensor::new(shape.to_vec(), data)
}

/// Writes a tensor as .npy in its own element type.
pub fn save_npy(path: &Path, t: &Tensor) -> Result<()> {
    fn write<T: ndarray_npy::WritableElement + Copy>(path: &Path, shape: &[usize], v: &[T]) -> Result<()> {
        let arr =
            ndarray::ArrayD::from_shape_vec(shape.to_vec(), v.to_vec()).map_err(|e| Error::other(e.to_string()))?;
        ndarray_npy::write_npy(path, &arr)
            .map_err(|e| Error::new(ErrorKind::Other(format!("{}: cannot write: {e}", path.display()))))
    }
    match t.data() {
        TensorData::F32(v) => write(path, t.shape(), v),
        TensorData::F64(v) => write(path, t.shape(), v),
        TensorData::I64(v) => write(path, t.shape(), v),
        TensorData::I32(v) => write(path, t.shape(), v),
        TensorData::I8(v) => write(path, t.shape(), v),
        TensorData::U8(v) => write(path, t.shape(), v),
        TensorData::Bool(v) => write(path, t.shape(), v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "images")]
    const COLOUR: [u8; 3] = [200, 100, 50];

    /// A 3×2 PNG of one colour, written to the temp dir and loaded into `shape`.
    #[cfg(feature = "images")]
    fn load_png(colour: [u8; 3], shape: &[usize], dtype: DType) -> Tensor {
        let path = std::env::temp_dir().join(format!("effc-input-{}-{dtype}.png", std::process::id()));
        image::RgbImage::from_pixel(3, 2, image::Rgb(colour)).save(&path).unwrap();
        let t = load(&path, shape, dtype);
        std::fs::remove_file(&path).unwrap();
        t.unwrap()
    }

    /// A solid-colour PNG is read through the opened file, resized and normalised:
    /// every value of channel c is (colour[c]/255 − mean[c]) / std[c].
    #[test]
    #[cfg(feature = "images")]
    fn a_png_fills_an_nchw_input() {
        let v = load_png(COLOUR, &[1, 3, 4, 4], DType::F32).to_f32_vec();
        let colour = COLOUR;
        for (c, plane) in v.chunks(16).enumerate() {
            let want = (colour[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            assert!(plane.iter().all(|&x| (x - want).abs() < 1e-6), "channel {c}: {plane:?} vs {want}");
        }
    }

    /// A uint8 input takes an image's raw pixels, channels last as laid out by the model.
    #[test]
    #[cfg(feature = "images")]
    fn a_png_fills_a_uint8_nhwc_input_with_raw_pixels() {
        let TensorData::U8(v) = load_png(COLOUR, &[1, 4, 4, 3], DType::U8).data().clone() else { panic!("not u8") };
        assert!(v.chunks(3).all(|px| px == COLOUR), "{v:?}");
    }

    /// Each dtype survives save and load; a file of another type is refused by name.
    #[test]
    fn npy_files_keep_their_element_type() {
        let dir = std::env::temp_dir().join(format!("effc-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let u8s = seeded(&[2, 3], DType::U8, 7).unwrap();
        let i8s = seeded(&[2, 3], DType::I8, 7).unwrap();
        for t in [seeded_noise(&[2, 3], 1), u8s.clone(), i8s, Tensor::from_i64(vec![2], vec![-5, 1 << 40]).unwrap()] {
            let p = dir.join(format!("{}.npy", t.dtype()));
            save_npy(&p, &t).unwrap();
            assert_eq!(load(&p, t.shape(), t.dtype()).unwrap(), t);
            let other = if t.dtype() == DType::F32 { DType::U8 } else { DType::F32 };
            let e = load(&p, t.shape(), other).unwrap_err().to_string();
            assert!(e.contains(&format!("but the model input is {other}")), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        // Seeded uint8 data spreads over the levels: 4096 values reach both ends.
        let TensorData::U8(v) = seeded(&[4096], DType::U8, 3).unwrap().data().clone() else { panic!() };
        assert!(v.iter().any(|&x| x < 8) && v.iter().any(|&x| x > 247), "{:?}", &v[..16]);
    }
}
