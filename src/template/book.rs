//! The task templates the function's requests name, read with GetTaskTemplate through that
//! operation's own pace (2/s, burst 5), kept for the environment's life and read again after
//! `REFRESH` (a template edited in the console is seen within minutes). A template that cannot
//! be read (no permission, throttled, gone) is logged once and the call goes ahead unchecked, as
//! it would without the check: the check never takes the function down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Shape, TaskTemplate};
use crate::config::Config;
use crate::connect::{paced, CallPolicy};
use crate::error::{BridgeError, Op};
use crate::mapping::TemplateId;
use crate::pace::{Pace, PaceSetting};
use crate::plan::Priority;
use crate::task::TaskRequest;

/// How long a template read is trusted before it is read again, unless configured
/// (`TASK_TEMPLATE_REFRESH_SECONDS`).
pub const REFRESH: Duration = Duration::from_secs(300);
/// How long a template that could not be read waits before it is tried again.
pub const RETRY_UNREADABLE: Duration = Duration::from_secs(60);
/// The most one read may take of an invocation: a read that hangs leaves the rest of the
/// invocation to the call, which then goes unchecked.
pub const READ_BUDGET: Duration = Duration::from_secs(2);
/// The most the cold start spends reading templates ahead (Lambda allows 10 s for the whole
/// initialisation).
pub const WARM_BUDGET: Duration = Duration::from_secs(3);

struct Entry {
    template: Option<TaskTemplate>,
    read_at: Instant,
}

pub struct Book {
    client: aws_sdk_connect::Client,
    instance_id: String,
    pacer: Pace,
    policy: CallPolicy,
    refresh: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// One read at a time: records of a batch that name one template wait for its read
    /// instead of each spending a turn of the operation's quota.
    reading: tokio::sync::Mutex<()>,
    /// The ids the configuration names (read ahead): only these are logged; an id rendered
    /// from an event is event data.
    named: Mutex<std::collections::HashSet<String>>,
}

impl Book {
    /// `callers`: the environments sharing the operation's quota (`CONNECT_CALLERS`).
    pub fn new(
        client: aws_sdk_connect::Client,
        instance_id: String,
        policy: CallPolicy,
        callers: u32,
    ) -> Book {
        let (rate, burst) = Op::GetTaskTemplate
            .connect_quota()
            .expect("GetTaskTemplate has a quota");
        Book {
            client,
            instance_id,
            pacer: Pace::local(PaceSetting {
                rate,
                burst,
                callers,
            }),
            policy,
            refresh: REFRESH,
            entries: Mutex::new(HashMap::new()),
            reading: tokio::sync::Mutex::new(()),
            named: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Templates are read again after `refresh` rather than `REFRESH`.
    pub fn with_refresh(mut self, refresh: Duration) -> Book {
        self.refresh = refresh;
        self
    }

    /// At cold start: every template the configuration names literally, read once, within
    /// `WARM_BUDGET` in all (what is not read by then is read before its first call).
    pub async fn warm(&self, ids: impl IntoIterator<Item = String>) {
        let until = Instant::now() + WARM_BUDGET;
        for id in ids {
            self.named.lock().expect("not poisoned").insert(id.clone());
            self.get(&id, Some(until)).await;
        }
    }

    /// The template `id` names: the one read within `REFRESH`, else read now, within
    /// `READ_BUDGET` of the invocation. None when it cannot be read: the request then goes
    /// unchecked (a copy older than `REFRESH` is not enforced: the template may have changed).
    pub async fn get(&self, id: &str, deadline: Option<Instant>) -> Option<TaskTemplate> {
        if let Some(known) = self.fresh(id) {
            return known;
        }
        let _reading = self.reading.lock().await;
        // Read meanwhile by the record that held the lock.
        if let Some(known) = self.fresh(id) {
            return known;
        }
        let budget = Instant::now() + READ_BUDGET;
        let until = deadline.map_or(budget, |d| d.min(budget));
        let was_readable = self
            .entries
            .lock()
            .expect("not poisoned")
            .get(id)
            .is_none_or(|e| e.template.is_some());
        let template = match self.read(id, Some(until)).await {
            Ok(template) => Some(template),
            Err(e) => {
                // Said once per spell of unreadability.
                if was_readable {
                    let named = self.named.lock().expect("not poisoned").contains(id);
                    tracing::warn!(
                        task_template_id = named.then_some(id),
                        error_code = e.code(),
                        "the task template cannot be read: requests that name it are sent unchecked"
                    );
                }
                None
            }
        };
        self.entries.lock().expect("not poisoned").insert(
            id.to_string(),
            Entry {
                template: template.clone(),
                read_at: Instant::now(),
            },
        );
        template
    }

    /// What is known of `id` and still trusted: Some(template) within `REFRESH` of its read,
    /// Some(None) within `RETRY_UNREADABLE` of a failed one; None when it is to be read.
    fn fresh(&self, id: &str) -> Option<Option<TaskTemplate>> {
        let entries = self.entries.lock().expect("not poisoned");
        let entry = entries.get(id)?;
        let trusted = if entry.template.is_some() {
            self.refresh
        } else {
            RETRY_UNREADABLE.min(self.refresh)
        };
        (entry.read_at.elapsed() < trusted).then(|| entry.template.clone())
    }

    /// Checks a prepared request against the template it names, if it names one that can be
    /// read: a request that does not fit is refused before any call, naming the fields and the
    /// rules they break.
    pub async fn check(
        &self,
        request: &TaskRequest,
        deadline: Option<Instant>,
    ) -> Result<(), BridgeError> {
        let Some(id) = request
            .task_template_id
            .as_deref()
            .filter(|i| !i.is_empty())
        else {
            return Ok(());
        };
        let Some(template) = self.get(id, deadline).await else {
            return Ok(());
        };
        let problems = template.check(&Shape::of(request));
        if problems.is_empty() {
            return Ok(());
        }
        Err(BridgeError::TemplateMismatch {
            template: id.to_string(),
            problems: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    async fn read(&self, id: &str, deadline: Option<Instant>) -> Result<TaskTemplate, BridgeError> {
        let out = paced(
            &self.pacer,
            deadline,
            &self.policy,
            Priority::Normal,
            |_| {
                let call = self
                    .client
                    .get_task_template()
                    .instance_id(&self.instance_id)
                    .task_template_id(id)
                    .send();
                async move { call.await.map_err(|e| Op::GetTaskTemplate.error(e)) }
            },
        )
        .await?;
        Ok(of_sdk(&out))
    }
}

/// The book a configuration needs: None when neither the default (`CONNECT_TASK_TEMPLATE_ID`)
/// nor any route names a task template; else a book that has read every template named
/// literally (one that cannot be read is logged once, and its requests go unchecked).
pub async fn for_config(config: &Config, client: &aws_sdk_connect::Client) -> Option<Book> {
    let default = config.defaults.task_template_id.as_deref();
    let uses_templates = config
        .mapping
        .route_shapes(default)
        .iter()
        .any(|r| r.template != TemplateId::None);
    if !uses_templates {
        return None;
    }
    let book = Book::new(
        client.clone(),
        config.defaults.instance_id.clone(),
        config.call_policy,
        config.pace.callers,
    )
    .with_refresh(config.template_refresh);
    book.warm(config.mapping.literal_template_ids(default))
        .await;
    Some(book)
}

/// The SDK's answer in the shape the check reads.
fn of_sdk(
    out: &aws_sdk_connect::operation::get_task_template::GetTaskTemplateOutput,
) -> TaskTemplate {
    let name_of = |id: Option<&aws_sdk_connect::types::TaskTemplateFieldIdentifier>| {
        id.and_then(|i| i.name()).unwrap_or_default().to_string()
    };
    TaskTemplate {
        id: out.id().to_string(),
        name: out.name().to_string(),
        status: out.status().map_or("ACTIVE", |s| s.as_str()).to_string(),
        contact_flow_id: out
            .contact_flow_id()
            .filter(|f| !f.is_empty())
            .map(str::to_string),
        fields: out
            .fields()
            .iter()
            .map(|f| super::Field {
                name: name_of(f.id()),
                kind: f.r#type().map_or("", |t| t.as_str()).to_string(),
                options: f.single_select_options().to_vec(),
            })
            .collect(),
        required: out
            .constraints()
            .map(|c| c.required_fields())
            .unwrap_or_default()
            .iter()
            .map(|r| name_of(r.id()))
            .collect(),
        defaults: out
            .defaults()
            .map(|d| d.default_field_values())
            .unwrap_or_default()
            .iter()
            .filter(|d| d.default_value().is_some_and(|v| !v.is_empty()))
            .map(|d| name_of(d.id()))
            .collect(),
    }
}
