//! Scripted answers for `switchyard try --respond` and `switchyard dev --respond`:
//! `STATUS[,header=value]...[,body=TEXT|body=@FILE]`, or `@FILE` for a file of
//! such answers, one per line (`#` starts a comment). The answers are given in
//! order; once they are used up, every request is answered `200 {}`.

use std::path::Path;

use crate::imports::http::Response;

/// The answers of every `--respond`, in order.
pub fn script(specs: &[String]) -> anyhow::Result<Vec<Response>> {
    let mut answers = Vec::new();
    for spec in specs {
        match spec.strip_prefix('@') {
            Some(file) => answers.extend(file_of_answers(Path::new(file))?),
            None => answers.push(answer(spec, Path::new("."))?),
        }
    }
    Ok(answers)
}

/// A file of answers, one per line; errors name the file and the line.
fn file_of_answers(file: &Path) -> anyhow::Result<Vec<Response>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut answers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        answers.push(
            answer(line, base).map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?,
        );
    }
    Ok(answers)
}

/// One answer; `body=@FILE` is read relative to `base`.
fn answer(spec: &str, base: &Path) -> anyhow::Result<Response> {
    let mut parts = spec.split(',');
    let status_text = parts.next().unwrap_or("").trim();
    let status: u16 = status_text
        .parse()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{spec}`: an answer starts with an HTTP status (100 to 599), e.g. `429,retry-after=1` or `200`"
            )
        })?;
    let mut headers = Vec::new();
    let mut body = None;
    for part in parts {
        let (name, value) = part.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("`{spec}`: `{part}` is not `header=value` or `body=...`")
        })?;
        let name = name.trim().to_ascii_lowercase();
        if name == "body" {
            body = Some(match value.strip_prefix('@') {
                Some(file) => {
                    let path = base.join(file);
                    std::fs::read(&path)
                        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?
                }
                None => value.as_bytes().to_vec(),
            });
        } else if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            anyhow::bail!("`{spec}`: `{name}` is not a header name");
        } else {
            headers.push((name, value.trim().to_string()));
        }
    }
    let body = body.unwrap_or_else(|| b"{}".to_vec());
    if !headers.iter().any(|(k, _)| k == "content-type") && body.first() == Some(&b'{') {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_order_from_flags_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("partial.json"), r#"{"failed":[1]}"#).unwrap();
        let file = dir.path().join("answers.txt");
        std::fs::write(
            &file,
            "# the vendor's bad day\n503\n\n400,body=@partial.json  # then a partial failure\n",
        )
        .unwrap();
        let specs = vec![
            "429,Retry-After=1".to_string(),
            format!("@{}", file.display()),
            "200,body=ok".to_string(),
        ];
        let answers = script(&specs).unwrap();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [429, 503, 400, 200]);
        assert_eq!(answers[0].headers[0], ("retry-after".into(), "1".into()));
        assert_eq!(answers[2].body, br#"{"failed":[1]}"#);
        assert_eq!(answers[3].body, b"ok");
    }

    #[test]
    fn bad_answers_say_what_is_expected() {
        for (spec, says) in [
            ("", "HTTP status"),
            ("42", "HTTP status"),
            ("200,nope", "header=value"),
            ("200,a b=1", "header name"),
            ("200,body=@/nonexistent/x", "cannot read"),
        ] {
            let err = script(&[spec.to_string()]).unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "200\nfour hundred\n").unwrap();
        let err = script(&[format!("@{}", file.display())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.txt:2:"), "{err}");
    }
}
