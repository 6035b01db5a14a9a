//! A real S3-compatible server (moto's, installed by `.ci/run`) for the tests.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, python};

/// The server; killed when dropped.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_s3() -> S3Server {
    let port = free_port();
    let child = Command::new(python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the S3 test server (python -m moto.server) starts; .ci/run installs moto[server]");
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "S3 server did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

pub fn create_bucket(endpoint: &str, bucket: &str) {
    let script = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{bucket}')"
    );
    let status = Command::new(python())
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "cannot create bucket {bucket}");
}

pub fn storage_section(endpoint: &str) -> String {
    format!(
        "[storage]\naws_endpoint = \"{endpoint}\"\naws_region = \"us-east-1\"\nallow_http = true\n\
         aws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n"
    )
}
