//! `podium submit`: packs a submission folder and uploads it to a `podium serve`.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::archive;
use crate::error::{Error, Result};

/// The server's answer: its HTTP status and its JSON body.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

/// `http://host:port` (with an optional path prefix, as behind a reverse proxy) split into
/// the address to connect to, the Host header and the prefix.
fn parse_server(url: &str) -> Result<(String, String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(Error::msg(format!(
            "--server {url:?}: podium submit speaks plain HTTP (http://host:port). For a server behind TLS, pack with `podium submit --pack-only FILE DIR` and send FILE with `curl --fail-with-body -H \"Authorization: Bearer $PODIUM_TOKEN\" --data-binary @FILE https://…/api/submissions`"
        )));
    };
    let (authority, prefix) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(Error::msg(format!("--server {url:?}: no host")));
    }
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((address, authority.to_string(), prefix.to_string()))
}

/// Sends one request and reads the JSON answer.
pub fn request(
    server: &str,
    method: &str,
    path: &str,
    token: &str,
    upload: Option<&Path>,
) -> Result<Answer> {
    let (address, host, prefix) = parse_server(server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("cannot start the client: {e}")))?;
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| Error::msg(format!("cannot reach {server}: {e}")))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| Error::msg(format!("{server}: {e}")))?;
        tokio::spawn(connection);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
            .header(hyper::header::HOST, host)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match upload {
            Some(file) => {
                let length = std::fs::metadata(file)
                    .map_err(|e| Error::io("read", file, e))?
                    .len();
                builder = builder
                    .header(hyper::header::CONTENT_LENGTH, length)
                    .header(hyper::header::CONTENT_TYPE, "application/gzip");
                let reader = std::fs::File::open(file).map_err(|e| Error::io("read", file, e))?;
                let chunks = futures_util::stream::unfold(reader, |mut reader| async move {
                    let mut buffer = vec![0u8; 1 << 20];
                    match reader.read(&mut buffer) {
                        Ok(0) => None,
                        Ok(n) => {
                            buffer.truncate(n);
                            Some((
                                Ok::<_, std::io::Error>(Frame::data(Bytes::from(buffer))),
                                reader,
                            ))
                        }
                        Err(e) => Some((Err(e), reader)),
                    }
                });
                StreamBody::new(chunks).boxed()
            }
            None => http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        };
        let request = builder
            .body(body)
            .map_err(|e| Error::msg(format!("{server}: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Error::msg(format!("{server}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::msg(format!("{server}: {e}")))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({ "error": String::from_utf8_lossy(&bytes).into_owned() }),
        );
        Ok(Answer { status, body })
    })
}

/// Packs `folder` into a temporary archive and uploads it; the server's answer. The token, the
/// quota and the size are checked with the server first, so that nothing is uploaded in vain
/// (a server refusing an upload does not read it).
pub fn submit(server: &str, token: &str, folder: &Path) -> Result<Answer> {
    let scratch =
        tempfile::tempdir().map_err(|e| Error::msg(format!("no temporary folder: {e}")))?;
    let packed = scratch.path().join("submission.tar.gz");
    let size = archive::pack(folder, &packed).map_err(|e| Error::msg(e.0))?;
    let team = request(server, "GET", "/api/submissions", token, None)?;
    if team.status != 200 {
        return Ok(team);
    }
    if team.body["can_submit"] == false {
        return Ok(Answer {
            status: 429,
            body: serde_json::json!({ "error": team.body["quota"] }),
        });
    }
    if let Some(limit) = team.body["max_upload_bytes"].as_u64() {
        if size > limit {
            return Ok(Answer {
                status: 413,
                body: serde_json::json!({ "error": format!(
                    "the packed submission is {size} bytes, more than the server's limit of {limit}; leave out what the program does not need at run time"
                ) }),
            });
        }
    }
    request(server, "POST", "/api/submissions", token, Some(&packed))
}
