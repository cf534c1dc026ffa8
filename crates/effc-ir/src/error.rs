use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, without where.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    #[error("unsupported op {op_type}{}", domain_suffix(domain))]
    UnsupportedOp { op_type: String, domain: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("shape error: {0}")]
    Shape(String),
    #[error("external data: {0}")]
    ExternalData(String),
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("{0}")]
    Other(String),
}

fn domain_suffix(domain: &str) -> String {
    if domain.is_empty() || domain == "ai.onnx" { String::new() } else { format!(" (domain {domain})") }
}

/// Where an error happened. Boxed inside [`Error`] to keep `Result`s small.
#[derive(Debug, Default)]
pub struct Context {
    pub file: Option<PathBuf>,
    pub node: Option<String>,
    pub op_type: Option<String>,
    pub opset: Option<i64>,
    /// The tensor (initializer, constant) the error is about.
    pub tensor: Option<String>,
    /// The input shapes being compiled, when a model is specialised to shapes at run time.
    pub input_shapes: Option<String>,
}

/// effc's one error type: an [`ErrorKind`] plus where it happened (file, node, op, opset).
/// It prints as one line, e.g.
/// `model.onnx: node 'conv_3' (Conv, opset 13): shape error: group 3 does not divide 32 input channels`.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub context: Box<Context>,
}

impl Error {
    pub fn new(kind: ErrorKind) -> Self {
        Error { kind, context: Box::default() }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid(msg.into()))
    }

    pub fn shape(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Shape(msg.into()))
    }

    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported(msg.into()))
    }

    pub fn limit(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit(msg.into()))
    }

    pub fn other(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other(msg.into()))
    }

    /// Records the file, unless a more specific one is already set.
    pub fn in_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.context.file.get_or_insert_with(|| path.into());
        self
    }

    /// Records the node and op, unless already set by a deeper frame.
    pub fn at_node(mut self, node: &str, op_type: &str) -> Self {
        let c = &mut self.context;
        if c.node.is_none() && c.op_type.is_none() {
            c.node = Some(node.to_string());
            c.op_type = Some(op_type.to_string());
        }
        self
    }

    pub fn for_tensor(mut self, name: &str) -> Self {
        self.context.tensor.get_or_insert_with(|| name.to_string());
        self
    }

    /// Records the input shapes a model was being compiled for, unless already set.
    pub fn for_input_shapes(mut self, shapes: &[Vec<usize>]) -> Self {
        let text = shapes.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        self.context.input_shapes.get_or_insert(text);
        self
    }

    pub fn with_opset(mut self, opset: i64) -> Self {
        self.context.opset.get_or_insert(opset);
        self
    }
}

/// Writes through to a formatter with control characters escaped (`\n`, `\u{1b}`): names
/// come from the file, and an error is always one line that cannot rewrite the terminal.
struct OneLine<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for OneLine<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !s.chars().any(char::is_control) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let f = &mut OneLine(f);
        let c = &self.context;
        if let Some(file) = &c.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(shapes) = &c.input_shapes {
            write!(f, "input shapes {shapes}: ")?;
        }
        match (&c.node, &c.op_type) {
            (Some(node), Some(op)) => {
                let node = if node.is_empty() { "<unnamed>" } else { node };
                write!(f, "node '{node}' ({op}")?;
                if let Some(v) = c.opset {
                    write!(f, ", opset {v}")?;
                }
                write!(f, "): ")?;
            }
            (Some(node), None) => write!(f, "node '{node}': ")?,
            _ => {}
        }
        if let Some(t) = &c.tensor {
            write!(f, "tensor '{t}': ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}
