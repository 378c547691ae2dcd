//! The sample files in `events/`: events to put on the bus, and the sample organizations'
//! provider settings.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::emulator::REGION;
use crate::error::LocalError;

/// An EventBridge envelope of a new event (its own id) published at `time`, as another
/// domain's would reach the bus.
pub fn envelope(detail_type: &str, source: &str, time: DateTime<Utc>, detail: Value) -> Value {
    json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": detail_type,
        "source": source, "account": "123456789012", "time": herald_core::time::format(&time),
        "region": REGION, "resources": [], "detail": detail,
    })
}

/// The `.json` files in a folder, in file-name order.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| LocalError::File {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// A file's JSON, or why it is not JSON.
fn read_json(path: &Path) -> Result<Result<Value, String>, LocalError> {
    let text = std::fs::read_to_string(path).map_err(|source| LocalError::File {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}")))
}

/// The events in a file: one envelope, or a JSON array of them.
pub fn read_events(path: &Path) -> Result<Vec<Value>, LocalError> {
    let not_events = |why: String| LocalError::NotEvents {
        path: path.to_path_buf(),
        why,
    };
    match read_json(path)? {
        Ok(Value::Array(events)) => Ok(events),
        Ok(event @ Value::Object(_)) => Ok(vec![event]),
        Ok(_) => Err(not_events(
            "expected an event object or an array of events".into(),
        )),
        Err(why) => Err(not_events(why)),
    }
}

/// A context to render a template with: a JSON object.
pub fn read_context(path: &Path) -> Result<Map<String, Value>, LocalError> {
    let not_context = |why: String| LocalError::NotContext {
        path: path.to_path_buf(),
        why,
    };
    match read_json(path)? {
        Ok(Value::Object(context)) => Ok(context),
        Ok(_) => Err(not_context("expected an object of variables".into())),
        Err(why) => Err(not_context(why)),
    }
}

/// The samples in a folder, in file-name order, each event labelled with its file's name.
pub fn read_samples(dir: &Path) -> Result<(Vec<Value>, Vec<String>), LocalError> {
    let mut events = Vec::new();
    let mut labels = Vec::new();
    for f in json_files(dir)? {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in read_events(&f)? {
            events.push(e);
            labels.push(name.clone());
        }
    }
    Ok((events, labels))
}

/// A sample organization's provider settings: its file, the organization (the file's name),
/// and each provider's `PUT /admin/providers/{provider}` body.
#[derive(Debug, Clone)]
pub struct SampleProviders {
    pub path: PathBuf,
    pub org: String,
    pub providers: Vec<(String, Value)>,
}

/// The sample organizations' provider settings: each file `<org>.json` in `dir`, an object of
/// provider names and bodies.
pub fn providers(dir: &Path) -> Result<Vec<SampleProviders>, LocalError> {
    let mut samples = Vec::new();
    for path in json_files(dir)? {
        let not_settings = |why: String| LocalError::NotSample {
            path: path.clone(),
            why,
        };
        let providers = match read_json(&path)? {
            Ok(Value::Object(providers)) => providers.into_iter().collect(),
            Ok(_) => return Err(not_settings("expected an object of providers".into())),
            Err(why) => return Err(not_settings(why)),
        };
        let org = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        samples.push(SampleProviders {
            path,
            org,
            providers,
        });
    }
    Ok(samples)
}

/// A sample organization's templates: the api requests that store them, in order.
#[derive(Debug)]
pub struct SampleTemplates {
    pub path: PathBuf,
    pub org: String,
    /// The path of each `PUT` and its body: the organization's types first, then templates.
    pub puts: Vec<(String, Value)>,
}

/// The sample organizations' templates: each file `<org>.json` in `dir`, an object of `types`
/// (type → body of `PUT /templates/{type}`) and `templates` (`type/channel/locale` → body of
/// `PUT /templates/{type}/{channel}/{locale}`).
pub fn templates(dir: &Path) -> Result<Vec<SampleTemplates>, LocalError> {
    let mut samples = Vec::new();
    for path in json_files(dir)? {
        let not_templates = |why: String| LocalError::NotSample {
            path: path.clone(),
            why,
        };
        let mut sample = match read_json(&path)? {
            Ok(Value::Object(sample)) => sample,
            Ok(_) => return Err(not_templates("expected an object".into())),
            Err(why) => return Err(not_templates(why)),
        };
        let mut puts = Vec::new();
        for field in ["types", "templates"] {
            match sample.remove(field) {
                Some(Value::Object(bodies)) => puts.extend(
                    bodies
                        .into_iter()
                        .map(|(name, body)| (format!("/templates/{name}"), body)),
                ),
                None => {}
                Some(_) => return Err(not_templates(format!("{field}: expected an object"))),
            }
        }
        if let Some(field) = sample.keys().next() {
            return Err(not_templates(format!(
                "{field}: unknown field, expected types or templates"
            )));
        }
        let org = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        samples.push(SampleTemplates { path, org, puts });
    }
    Ok(samples)
}
