//! Bad and hostile files get a clear error naming what is wrong, never a panic.

mod common;

use common::*;
use effc_models::writer::*;
use effc_onnx::proto::tensor_proto::DataLocation;
use effc_onnx::proto::{ModelProto, StringStringEntryProto, TensorProto};

fn assert_err_contains(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error {e:?} should mention {p:?}");
    }
    assert!(!e.contains('\n'), "error should be one line: {e:?}");
}

/// A one-Conv model whose weight tensor is `w`.
fn conv_with_weight(w: TensorProto) -> ModelProto {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 3, 8, 8]);
    let w = b.weight(w);
    let y = b.node("Conv", &[&x, &w], vec![]);
    b.output(&y);
    b.build()
}

#[test]
fn truncated_and_random_bytes_are_decode_errors() {
    let full = std::fs::read(shared_models().join("tv_b0_legacy.onnx")).unwrap();
    for cut in [10, 1000, full.len() / 2, full.len() - 3] {
        let e = effc::compile_bytes(full[..cut].to_vec(), None, &effc::Options::default()).err().unwrap();
        assert!(matches!(e.kind, effc::ErrorKind::Decode(_)), "cut at {cut}: {e}");
    }
    for seed in 0..20 {
        let bytes: Vec<u8> = noise(4096, seed).iter().map(|v| (v * 127.0) as i8 as u8).collect();
        assert!(effc::compile_bytes(bytes, None, &effc::Options::default()).is_err());
    }
    let e = effc::compile_bytes(Vec::new(), None, &effc::Options::default()).err().unwrap().to_string();
    assert_err_contains(&e, &["empty"]);
}

#[test]
fn unsupported_op_is_named_with_its_node() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4]);
    let y = b.node("FancyNewOp", &[&x], vec![]);
    b.output(&y);
    let e = compile_err(&b.build());
    assert_err_contains(&e, &["unsupported op FancyNewOp", "node 'FancyNewOp_1'", "opset 13"]);
}

#[test]
fn bad_initializers_are_refused() {
    let mut neg = tensor_f32("w", &[4, 3, 1, 1], &[0.0; 12]);
    neg.dims[0] = -4;
    assert_err_contains(&compile_err(&conv_with_weight(neg)), &["tensor 'w'", "negative dim -4"]);

    let mut huge = tensor_f32("w", &[4, 3, 1, 1], &[0.0; 12]);
    huge.dims = vec![1 << 40, 1 << 40, 1 << 40, 1];
    assert_err_contains(&compile_err(&conv_with_weight(huge)), &["tensor 'w'", "overflows"]);

    let short = tensor_f32("w", &[4, 3, 1, 1], &[0.0; 11]);
    assert_err_contains(&compile_err(&conv_with_weight(short)), &["tensor 'w'", "11 elements", "need 12"]);

    // A tensor claiming data it does not carry: 64 MB, and 16 GB (over the memory cap).
    let mut claims = tensor_f32("w", &[4, 3, 1, 1], &[0.0; 12]);
    claims.dims = vec![1 << 12, 1 << 12, 1, 1];
    assert_err_contains(&compile_err(&conv_with_weight(claims.clone())), &["tensor 'w'", "12 elements"]);
    claims.dims = vec![1 << 16, 1 << 16, 1, 1];
    assert_err_contains(
        &compile_err(&conv_with_weight(claims)),
        &["tensor 'w'", "16384 MB, over the 4096 MB memory cap"],
    );
}

fn external_weight(location: &str, offset: Option<u64>, length: Option<u64>) -> TensorProto {
    let mut t = tensor_f32("w", &[4, 3, 1, 1], &[0.0; 12]);
    t.raw_data = Default::default();
    t.data_location = DataLocation::External as i32;
    let mut kv = vec![StringStringEntryProto { key: "location".into(), value: location.into() }];
    if let Some(o) = offset {
        kv.push(StringStringEntryProto { key: "offset".into(), value: o.to_string() });
    }
    if let Some(l) = length {
        kv.push(StringStringEntryProto { key: "length".into(), value: l.to_string() });
    }
    t.external_data = kv;
    t
}

fn compile_in_dir(dir: &std::path::Path, m: &ModelProto) -> String {
    let path = dir.join("model.onnx");
    save(m, &path).unwrap();
    match effc::compile_file(&path, &effc::Options::default()) {
        Ok(_) => panic!("compiled but should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_external_data_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.path().join("secret.bin"), [0u8; 48]).unwrap();
    std::fs::write(dir.join("w.bin"), [0u8; 48]).unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.bin"), dir.join("link.bin")).unwrap();

    let e = compile_in_dir(&dir, &conv_with_weight(external_weight("../secret.bin", None, None)));
    assert_err_contains(&e, &["model.onnx", "leaves the model's folder"]);
    let abs = root.path().join("secret.bin").display().to_string();
    let e = compile_in_dir(&dir, &conv_with_weight(external_weight(&abs, None, None)));
    assert_err_contains(&e, &["must be a relative path"]);
    let e = compile_in_dir(&dir, &conv_with_weight(external_weight("link.bin", None, None)));
    assert_err_contains(&e, &["outside the model's folder"]);
    let e = compile_in_dir(&dir, &conv_with_weight(external_weight("w.bin", Some(100), None)));
    assert_err_contains(&e, &["offset 100 is past the end"]);
    let e = compile_in_dir(&dir, &conv_with_weight(external_weight("w.bin", Some(8), Some(48))));
    assert_err_contains(&e, &["past the end"]);
    let e = compile_in_dir(&dir, &conv_with_weight(external_weight("w.bin", Some(4), None)));
    assert_err_contains(&e, &["tensor 'w'", "11 elements"]);
    let e = compile_in_dir(&dir, &conv_with_weight(external_weight("missing.bin", None, None)));
    assert_err_contains(&e, &["missing.bin"]);
    // The well-formed reference loads.
    let path = dir.join("ok.onnx");
    save(&conv_with_weight(external_weight("w.bin", Some(0), Some(48))), &path).unwrap();
    effc::compile_file(&path, &effc::Options::default()).unwrap();
}

#[test]
fn malformed_graphs_are_refused() {
    // A cycle: a = Relu(b), b = Relu(a).
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4]);
    b.graph.node.push(effc_onnx::proto::NodeProto {
        name: "n1".into(),
        op_type: "Add".into(),
        input: vec![x.clone(), "b".into()],
        output: vec!["a".into()],
        ..Default::default()
    });
    b.graph.node.push(effc_onnx::proto::NodeProto {
        name: "n2".into(),
        op_type: "Relu".into(),
        input: vec!["a".into()],
        output: vec!["b".into()],
        ..Default::default()
    });
    b.output("b");
    assert_err_contains(&compile_err(&b.build()), &["cycle"]);

    let mut b = GraphBuilder::new(13);
    let y = b.node("Relu", &["nowhere"], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["'nowhere'", "not produced"]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["listed twice"]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 0, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["input 'x'", "zero-size"]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, -3, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["input 'x'", "negative"]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1 << 31, 1 << 31, 1 << 31]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["overflows"]);

    let mut b = GraphBuilder::new(5);
    let x = b.input_f32("x", &[1, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["opset 5"]);
}

#[test]
fn conv_geometry_errors_name_the_node() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 3, 4, 4]);
    let w = b.weight_f32("w", &[2, 3, 7, 7], &[0.0; 2 * 3 * 49]);
    let y = b.node("Conv", &[&x, &w], vec![attr_ints("pads", &[1, 1, 1, 1])]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["node 'Conv_2' (Conv, opset 13)", "larger than the padded input"]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 6, 4, 4]);
    let w = b.weight_f32("w", &[4, 2, 1, 1], &[0.0; 8]);
    let y = b.node("Conv", &[&x, &w], vec![attr_int("group", 4)]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["group 4 must divide the input channels 6"]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4, 4, 4]);
    let w = b.weight_f32("w", &[4, 1, 3, 3], &[0.0; 36]);
    let y = b.node("Conv", &[&x, &w], vec![attr_int("group", 0)]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["group must be positive"]);
}

/// A window unrolled into the generated code may not have more than 128×128 taps: a
/// 1×1000000 MaxPool or a 1×50000 Conv kernel is refused in a moment, not an abort after
/// gigabytes of code. A kernel wider than the input in ceil mode is clipped, and runs.
#[test]
fn huge_windows_are_refused_or_clipped() {
    let pool = |width: i64, kernel: i64, stride: i64, ceil: i64| {
        let mut b = GraphBuilder::new(13);
        let x = b.input_f32("x", &[1, 1, 1, width]);
        let attrs = vec![
            attr_ints("kernel_shape", &[1, kernel]),
            attr_ints("strides", &[1, stride]),
            attr_int("ceil_mode", ceil),
        ];
        let y = b.node("MaxPool", &[&x], attrs);
        b.output(&y);
        b.build()
    };
    let e = compile_err(&pool(1_000_000, 1_000_000, 1, 0));
    assert_err_contains(&e, &["(MaxPool, opset 13)", "1×1000000 window", "at most 16384"]);
    let c = compile_ok(&pool(10, 1_000_000, 1_000_000, 1));
    let x = effc::Tensor::from_f32(vec![1, 1, 1, 10], (0..10).map(|i| ((i * 7) % 10) as f32).collect()).unwrap();
    assert_eq!(c.model().unwrap().run(&[x]).unwrap()[0].to_f32_vec(), [9.0]);

    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 1, 1, 50_000]);
    let w = b.weight_f32("w", &[1, 1, 1, 50_000], &vec![0.5; 50_000]);
    let y = b.node("Conv", &[&x, &w], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["(Conv, opset 13)", "1×50000 window"]);
}

/// Invalid models onnxruntime refuses are refused too, before anything is allocated
/// from their numbers.
#[test]
fn inconsistent_attributes_and_duplicate_initializers_are_refused() {
    // Transpose's perm must name every axis.
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 3, 4]);
    let y = b.node("Transpose", &[&x], vec![attr_ints("perm", &[1, 0])]);
    b.output(&y);
    assert_err_contains(
        &compile_err(&b.build()),
        &["(Transpose, opset 13)", "perm [1, 0] has 2 entries for a rank-4 input"],
    );
    // Split-18's num_outputs must be the node's output count (2^40 was allocated first).
    let mut b = GraphBuilder::new(18);
    let x = b.input_f32("x", &[1, 4]);
    let ys = b.node_n("Split", &[&x], vec![attr_int("axis", 1), attr_int("num_outputs", 1 << 40)], 2);
    b.output(&ys[0]);
    b.output(&ys[1]);
    assert_err_contains(&compile_err(&b.build()), &["(Split, opset 18)", "num_outputs 1099511627776", "2 outputs"]);
    // Two initializers with one name.
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[2]);
    let w = b.weight(tensor_f32("w", &[2], &[1.0, 2.0]));
    b.weight(tensor_f32("w", &[2], &[3.0, 4.0]));
    let y = b.node("Add", &[&x, &w], vec![]);
    b.output(&y);
    assert_err_contains(&compile_err(&b.build()), &["initializer 'w' is defined twice"]);
}

/// Names come from the file: an error that quotes one stays one line, with control
/// characters escaped.
#[test]
fn control_characters_in_names_are_escaped() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 3, 4]);
    let y = b.node("Transpose", &[&x], vec![attr_ints("perm", &[0])]);
    b.output(&y);
    let mut m = b.build();
    m.graph.as_mut().unwrap().node[0].name = "evil\nname\u{1b}[2K".into();
    let e = compile_err(&m);
    assert_err_contains(&e, &["node 'evil\\nname\\u{1b}[2K' (Transpose"]);
    assert!(!e.chars().any(char::is_control), "{e:?}");
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// A FIFO or a device where a file is expected is refused at once, never read: as the
/// model, as its external data (also through a link inside the folder), and as an input.
#[test]
fn fifos_and_devices_are_refused_without_hanging() {
    let root = tempfile::tempdir().unwrap();
    let fifo = root.path().join("model.onnx");
    mkfifo(&fifo);
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let e = effc::compile_file(path, &effc::Options::default()).err().unwrap().to_string();
        assert_err_contains(&e, &["is not a regular file"]);
    }
    let dir = root.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    mkfifo(&dir.join("w.bin"));
    std::os::unix::fs::symlink(dir.join("w.bin"), dir.join("link.bin")).unwrap();
    for location in ["w.bin", "link.bin"] {
        let e = compile_in_dir(&dir, &conv_with_weight(external_weight(location, None, None)));
        assert_err_contains(&e, &["w.bin is not a regular file"]);
    }
    let e = effc::input::load(&fifo.with_extension("npy"), &[1], effc::DType::F32).err().unwrap().to_string();
    assert_err_contains(&e, &["cannot read"]);
    let input = root.path().join("x.npy");
    mkfifo(&input);
    let e = effc::input::load(&input, &[1, 3], effc::DType::F32).err().unwrap().to_string();
    assert_err_contains(&e, &["x.npy is not a regular file"]);
}

/// An .npy header is checked against the model's input and the file's length before
/// anything is allocated from it.
#[test]
fn npy_headers_that_lie_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy = |name: &str, shape: &str, data: usize| {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(vec![0u8; data]);
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let e = effc::input::load(&npy("huge.npy", "(1000000, 1000000)", 0), &[1, 3], effc::DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert_err_contains(&e, &["has shape [1000000, 1000000], but the model input needs [1, 3]"]);
    let e = effc::input::load(&npy("short.npy", "(1000000, 1000000)", 16), &[1000000, 1000000], effc::DType::F32)
        .err()
        .unwrap();
    assert_err_contains(&e.to_string(), &["claims 4000000000000 bytes of data but the file has"]);
    let ok = effc::input::load(&npy("ok.npy", "(1, 3)", 12), &[1, 3], effc::DType::F32).unwrap();
    assert_eq!(ok.to_f32_vec(), [0.0; 3]);
}

/// Slice steps of ±i64::MAX are valid and take one element (onnxruntime: output
/// (1, 3, 1, 8)); the element count used to overflow.
#[test]
fn slice_with_extreme_steps_takes_one_element() {
    for (start, end, step, row) in [(0, 4, i64::MAX, 0usize), (3, i64::MIN, -i64::MAX, 3)] {
        let mut b = GraphBuilder::new(13);
        let x = b.input_f32("x", &[1, 3, 4, 8]);
        let starts = b.weight_i64("starts", &[start]);
        let ends = b.weight_i64("ends", &[end]);
        let axes = b.weight_i64("axes", &[2]);
        let steps = b.weight_i64("steps", &[step]);
        let y = b.node("Slice", &[&x, &starts, &ends, &axes, &steps], vec![]);
        let y = b.node("Relu", &[&y], vec![]);
        b.output(&y);
        let c = compile_ok(&b.build());
        let data: Vec<f32> = (0..96).map(|i| i as f32).collect();
        let x = effc::Tensor::from_f32(vec![1, 3, 4, 8], data).unwrap();
        let out = &c.model().unwrap().run(&[x]).unwrap()[0];
        assert_eq!(out.shape(), [1, 3, 1, 8]);
        let want: Vec<f32> = (0..3).flat_map(|ch| (0..8).map(move |w| (ch * 32 + row * 8 + w) as f32)).collect();
        assert_eq!(out.to_f32_vec(), want, "step {step}");
    }
}

/// Constant folding has one budget for all it computes, the memory limit: a few hundred
/// bytes of ConstantOfShape → Add → ReduceMax chains no longer fold gigabytes.
#[test]
fn folding_stays_within_the_memory_limit() {
    let bomb = |repeats| effc_models::writer::encode(&effc_models::hostile::fold_bomb(repeats, 1 << 20));
    let opts = effc::Options { max_memory: Some(32 << 20), ..Default::default() };
    let e = effc::compile_bytes(bomb(2), None, &opts).err().unwrap().to_string();
    assert_err_contains(&e, &["constant folding would compute more than 33554432 bytes"]);
    // One link of the chain fits, and computes 1 + 2.
    let c = effc::compile_bytes(bomb(1), None, &opts).unwrap();
    let x = effc::Tensor::from_f32(vec![1], vec![1.0]).unwrap();
    assert_eq!(c.model().unwrap().run(&[x]).unwrap()[0].to_f32_vec(), [3.0]);
}

/// Initializers larger in all than the memory limit are refused from their dims, before a
/// byte of them is mapped or copied: a 1.5 GiB weight (here a sparse file) under a 1 GiB
/// limit, used or not.
#[test]
fn initializers_over_the_memory_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let n = 400_000_000u64;
    std::fs::File::create(dir.path().join("big.bin")).unwrap().set_len(n * 4).unwrap();
    let mut big = external_weight("big.bin", None, None);
    big.name = "big".into();
    big.dims = vec![n as i64];
    let mut m = conv_with_weight(tensor_f32("w", &[4, 3, 1, 1], &[0.5; 12]));
    m.graph.as_mut().unwrap().initializer.push(big);
    let path = dir.path().join("model.onnx");
    save(&m, &path).unwrap();
    let opts = effc::Options { max_memory: Some(1 << 30), ..Default::default() };
    let e = effc::compile_file(&path, &opts).err().unwrap().to_string();
    assert_err_contains(&e, &["the initializers need 1526 MB, over the 1024 MB memory cap"]);
}

/// Millions of empty nodes (2 bytes each in the file, a few hundred once decoded) are
/// refused from the wire format before anything is decoded: 5 million (10 MB) under a
/// 256 MiB limit. Real exports stay far below their limit: their bound is a small multiple
/// of their file size.
#[test]
fn files_whose_decoding_exceeds_the_memory_limit_are_refused_before_decoding() {
    use effc_onnx::proto::{GraphProto, NodeProto};
    let mut m = conv_with_weight(tensor_f32("w", &[4, 3, 1, 1], &[0.5; 12]));
    let graph: &mut GraphProto = m.graph.as_mut().unwrap();
    graph.node.extend(std::iter::repeat_n(NodeProto::default(), 5_000_000));
    let bytes = effc_models::writer::encode(&m);
    assert!(bytes.len() < 11 << 20, "{} bytes", bytes.len());
    let opts = effc::Options { max_memory: Some(256 << 20), ..Default::default() };
    let t = std::time::Instant::now();
    let e = effc::compile_bytes(bytes, None, &opts).err().unwrap().to_string();
    assert_err_contains(&e, &["5000001 nodes), over the memory limit of 256 MiB"]);
    assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
    for name in ["tv_b0_legacy", "tv_b0_dynamo", "keras_b0_nhwc", "timm_tf_v2b0", "timm_mnv4s"] {
        let bytes = std::fs::read(common::shared_models().join(format!("{name}.onnx"))).unwrap();
        let cost = effc_onnx::wire::decode_cost(&bytes).unwrap();
        println!(
            "{name}: {} bytes in the file, decoding bound {} bytes, {} nodes",
            bytes.len(),
            cost.bytes,
            cost.nodes
        );
        assert!(cost.bytes < 64 << 20, "{name}: {cost:?}");
    }
}

/// Windows wider than the unrolled limit loop over their taps at run time (a 1-D MaxPool of
/// 8392 taps over 220 000 values, found by the fuzzer, took 2.4 s to compile in a release
/// build and 90 s under ASan; now 1 ms): max, average (padding counted or not) and a
/// grouped conv with wide windows and dilation compute what tract does, on every kernel
/// path.
#[test]
fn wide_windows_loop_over_their_taps_and_match_tract() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4, 9, 700]);
    let pool = |b: &mut GraphBuilder, op: &str, include_pad: i64| {
        let mut attrs = vec![
            attr_ints("kernel_shape", &[3, 300]),
            attr_ints("strides", &[2, 7]),
            attr_ints("pads", &[1, 40, 1, 40]),
        ];
        if op == "AveragePool" {
            attrs.push(attr_int("count_include_pad", include_pad));
        }
        b.node(op, &[&x], attrs)
    };
    let (m, a0, a1) = (pool(&mut b, "MaxPool", 0), pool(&mut b, "AveragePool", 0), pool(&mut b, "AveragePool", 1));
    let w = b.weight_f32("w", &[4, 2, 2, 90], &noise(4 * 2 * 2 * 90, 3));
    let attrs = vec![attr_int("group", 2), attr_ints("dilations", &[2, 3]), attr_ints("pads", &[1, 5, 1, 5])];
    let c = b.node("Conv", &[&x, &w], attrs);
    for y in [&m, &a0, &a1, &c] {
        b.output(y);
    }
    let (_dir, path) = write_temp(&b.build());
    let shape = [1, 4, 9, 700];
    let x = effc::input::seeded_noise(&shape, 4);
    let theirs = effc_tract::Reference::load(&path, &[shape.to_vec()], &[]).unwrap().run(&[&x.to_f32_vec()]).unwrap();
    for kernels in kernel_paths() {
        let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
        let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap();
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            let cmp = effc::compare::Comparison::new(&o.to_f32_vec(), &t.data);
            assert!(cmp.max_rel <= 1e-4, "{kernels} output {i}: {cmp:?}");
        }
    }
}
