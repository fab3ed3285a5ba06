//! What a client of a release holds in its HTML: the static files the page references, and the
//! forms whose action is a server action (React renders a hidden `$ACTION_ID_<id>` field into
//! such a form, so that it works without JavaScript). Read from the page as any browser gets
//! it, never from the demo's markup. A scan, not a parser: React's output is regular.

/// A form of a page that posts to a server action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionForm {
    /// The action's id (from its `$ACTION_ID_<id>` field).
    pub action_id: String,
    /// Every field as rendered: hidden ones with their values (an idempotency key among them),
    /// visible ones empty (the client fills them).
    pub fields: Vec<(String, String)>,
    /// The names of the fields a person types into.
    pub typed: Vec<String>,
}

impl ActionForm {
    /// The fields to send, every typed one set to `text`.
    pub fn filled(&self, text: &str) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|(k, v)| {
                let v = if self.typed.contains(k) { text } else { v };
                (k.clone(), v.to_string())
            })
            .collect()
    }
}

/// Every `/_next/static/…` path the page references (script, link, preload and the RSC
/// payload's chunk list), query strings (`?dpl=`) kept, each once.
pub fn static_refs(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in html.match_indices("/_next/static/") {
        let rest = &html[i..];
        let end = rest
            .find(['"', '\'', '\\', ' ', '>', '<', ',', ')'])
            .unwrap_or(rest.len());
        let path = rest[..end].replace("&amp;", "&");
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// The page's forms that post to a server action.
pub fn action_forms(html: &str) -> Vec<ActionForm> {
    html.split("<form")
        .skip(1)
        .filter_map(|f| f.split("</form>").next())
        .filter_map(action_form)
        .collect()
}

fn action_form(form: &str) -> Option<ActionForm> {
    let mut fields = Vec::new();
    let mut typed = Vec::new();
    for tag in ["<input", "<textarea", "<select"] {
        for el in form.split(tag).skip(1) {
            let el = el.split('>').next().unwrap_or("");
            let Some(name) = attr(el, "name") else {
                continue;
            };
            let kind = attr(el, "type").unwrap_or_default();
            // What a browser leaves out of an untouched form's submission.
            if matches!(
                kind.as_str(),
                "submit" | "button" | "reset" | "file" | "checkbox" | "radio"
            ) {
                continue;
            }
            if tag != "<input" || kind != "hidden" {
                typed.push(name.clone());
            }
            fields.push((name, attr(el, "value").unwrap_or_default()));
        }
    }
    let action_id = fields
        .iter()
        .find_map(|(k, _)| k.strip_prefix("$ACTION_ID_"))?
        .to_string();
    Some(ActionForm {
        action_id,
        fields,
        typed,
    })
}

/// An attribute's value in a tag's text (`name="x"`), entities for `&`, `"` and `<` decoded.
fn attr(el: &str, name: &str) -> Option<String> {
    let pat = format!(" {name}=\"");
    let start = el.find(&pat)? + pat.len();
    let value = &el[start..];
    let value = &value[..value.find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&amp;", "&"),
    )
}

/// A `multipart/form-data` body of `fields` (what a browser sends for such a form): its
/// content type and bytes.
pub fn multipart(fields: &[(String, String)], boundary: &str) -> (String, Vec<u8>) {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<html><head><link rel="stylesheet" href="/_next/static/css/a1.css?dpl=r1" data-precedence="next"/><script src="/_next/static/chunks/b2.js?dpl=r1" async=""></script></head><body><form action="" encType="multipart/form-data" method="POST"><input type="hidden" name="$ACTION_ID_7f3a"/><input type="hidden" name="key" value="0b6e-4c"/><textarea name="body" aria-label="Note" required="" maxLength="500" rows="3"></textarea><input type="checkbox" name="pin" value="yes"/><button type="submit">Add</button></form><form><input name="q"/></form><script>self.__next_f.push([1,"1:I[\"/_next/static/chunks/c3.js?dpl=r1\",[]]"])</script><img src="/_next/static/chunks/b2.js?dpl=r1"/></body></html>"#;

    #[test]
    fn every_static_file_once() {
        assert_eq!(
            static_refs(PAGE),
            vec![
                "/_next/static/css/a1.css?dpl=r1",
                "/_next/static/chunks/b2.js?dpl=r1",
                "/_next/static/chunks/c3.js?dpl=r1",
            ]
        );
    }

    #[test]
    fn only_forms_with_a_server_action_and_their_fields() {
        let forms = action_forms(PAGE);
        assert_eq!(forms.len(), 1, "{forms:?}");
        let f = &forms[0];
        assert_eq!(f.action_id, "7f3a");
        assert_eq!(f.typed, vec!["body"]);
        assert_eq!(
            f.filled("hello"),
            vec![
                ("$ACTION_ID_7f3a".to_string(), String::new()),
                ("key".into(), "0b6e-4c".into()),
                ("body".into(), "hello".into()),
            ]
        );
    }

    #[test]
    fn a_multipart_body_as_a_browser_sends_it() {
        let (ct, body) = multipart(&[("a".into(), "1".into())], "XB");
        assert_eq!(ct, "multipart/form-data; boundary=XB");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XB--\r\n"
        );
    }
}
