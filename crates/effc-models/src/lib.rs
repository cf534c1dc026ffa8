//! Models built in code, for tests, benchmarks, fuzz seeds and `effc demo`: a small ONNX
//! graph writer over the frontend's protobuf types ([`writer`]) and, on top of it, the
//! EfficientNet / MobileNet family with seeded weights in each exporter's spelling
//! ([`family`]), and that family in onnxruntime's QDQ int8 spelling ([`quantize`]). The
//! frontend itself never writes models, so none of this ships in it.

pub mod family;
pub mod hostile;
pub mod quantize;
pub mod writer;
