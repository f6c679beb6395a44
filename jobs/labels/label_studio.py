"""Label Studio's REST API as calscore uses it: find or create a project that asks the task's question, import
tasks with the model's prediction, read back the annotations. Plain httpx: label-studio-sdk 2.1 would add 27
packages to the project's venv for these few calls (opencv and black among them) and take numpy back to 2.2.

A task carries the row's text (under the key the project's labeling config shows) and its row id in `data`, and
calscore's bookkeeping in `meta`: the row's sampling design and, for an audit sample, the sample's id. Inclusion
probabilities never leave the warehouse: a pull joins them from the sample.

Tokens: a personal access token (a JWT; the default for new organizations) is exchanged for an access token that
lasts minutes and is renewed once when refused; a legacy token is sent as it is. The token is only ever in a
request header.
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator
from xml.sax.saxutils import quoteattr

import httpx

from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.labels.importing import LabelFileError
from calscore.jobs.spec import SpecError, TaskSpec

TIMEOUT_SECONDS = 60.0
PAGE_SIZE = 100
URL_ENV = "LABEL_STUDIO_URL"  # the name Label Studio's own SDK reads
_JWT = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")


class LabelStudioError(CalscoreError):
    """The server cannot be reached, or refused a request."""


class ProjectMismatch(LabelFileError):
    """A project whose labeling config cannot give the task's labels (bad input: exit code 2)."""


@dataclass(frozen=True)
class Connection:
    url: str
    token: str = field(repr=False)
    token_env: str
    project: str  # a title, or an id when all digits


def connection(spec: TaskSpec, url: str | None = None, project: str | None = None) -> Connection:
    """The server, token and project for `spec`: an option, else the task file's [label_studio], else
    $LABEL_STUDIO_URL (the token only from the variable [label_studio] api_key_env names)."""
    settings, where = spec.label_studio, spec.source_path or "task file"
    url = url or settings.url or os.environ.get(URL_ENV)
    if not url:
        raise SpecError(f"{where}: label_studio.url: no Label Studio server given: set [label_studio] url, --url "
                        f"or {URL_ENV}")
    if not re.match(r"^https?://", url):
        raise SpecError(f"{where}: label_studio.url: {url!r} must start with http:// or https://")
    token = os.environ.get(settings.api_key_env)
    if not token:
        raise SpecError(f"{where}: label_studio.api_key_env: the environment variable {settings.api_key_env} holding "
                        "the API token is not set (Label Studio: Account & Settings > Personal Access Token)")
    return Connection(url.rstrip("/"), token, settings.api_key_env, project or settings.project or spec.name)


@dataclass(frozen=True)
class Project:
    """A project and where in its labeling config the task's labels are given."""

    id: int
    title: str
    choices: str  # the Choices control (an annotation result's from_name)
    to_name: str  # the object it labels
    text_key: str  # the task data field that object shows
    labels: dict[str, str]  # the task's label -> the project's spelling of it


def label_config(labels: list[str]) -> str:
    """A labeling config for a new project: the text, one choice per label."""
    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    return (f'<View><Text name="text" value="$text"/><Choices name="label" toName="text" choice="single" '
            f'showInLine="true">{choices}</Choices></View>')


def _project(data: dict, labels: list[str]) -> Project:
    """The project's first Choices control that offers every task label (in any case)."""
    where = f"Label Studio project {data['title']!r} (id {data['id']})"
    controls = {name: c for name, c in (data.get("parsed_label_config") or {}).items() if c.get("type") == "Choices"}
    if not controls:
        raise ProjectMismatch(f"{where} has no Choices control in its labeling config: calscore needs one choice per "
                              "row, one per task label")
    for name, control in controls.items():
        offered = {choice.casefold(): choice for choice in control.get("labels", [])}
        if all(label.casefold() in offered for label in labels):
            source = control["inputs"][0]
            return Project(data["id"], data["title"], name, control["to_name"][0], source["value"].lstrip("$"),
                           {label: offered[label.casefold()] for label in labels})
    raise ProjectMismatch(f"{where}: no Choices control offers all of the task's labels ({', '.join(labels)}); add "
                          "them to its labeling config or push to another project (--project)")


def prediction_task(project: Project, row: dict) -> dict:
    """One row as a task: its text and row id, calscore's bookkeeping in meta, the model's prediction."""
    meta = {"calscore_design": row["design"]}
    if row.get("sample_id"):
        meta["calscore_sample"] = row["sample_id"]
    task = {"data": {project.text_key: row["text"], "calscore_row_id": row["row_id"]}, "meta": meta}
    if row.get("predicted_label") in project.labels:
        task["predictions"] = [{
            "model_version": f"calscore {row.get('calibrator_version') or 'raw scores'}",
            "score": row["confidence"],
            "result": [{"from_name": project.choices, "to_name": project.to_name, "type": "choices",
                        "value": {"choices": [project.labels[row["predicted_label"]]]}}],
        }]
    return task


def annotated_label(project: Project, task: dict) -> tuple[str, int] | None:
    """(choice, annotator's user id) of the task's newest submitted annotation that makes a choice; None if there is none
    (skipped, or not annotated yet)."""
    for annotation in sorted(task.get("annotations") or [], key=lambda a: a.get("updated_at") or "", reverse=True):
        if annotation.get("was_cancelled"):
            continue
        for item in annotation.get("result") or []:
            if item.get("from_name") == project.choices and (item.get("value") or {}).get("choices"):
                return item["value"]["choices"][0], annotation.get("completed_by")
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class LabelStudio:
    """A session with one server (`with LabelStudio(connection) as ls: ...`)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._http = httpx.Client(base_url=conn.url, timeout=TIMEOUT_SECONDS)
        self._access: str | None = None  # a personal access token's current access token

    def __enter__(self) -> "LabelStudio":
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise LabelStudioError(f"Label Studio at {self.conn.url} cannot be reached "
                                   f"({type(exc).__name__}: {_one_line(exc) or 'no answer'})") from None

    def _authorization(self) -> str:
        if not _JWT.match(self.conn.token):
            return f"Token {self.conn.token}"
        if self._access is None:
            self._access = self._answer(self._send("POST", "/api/token/refresh/", json={"refresh": self.conn.token}),
                                        "POST", "/api/token/refresh/")["access"]
        return f"Bearer {self._access}"

    def _request(self, method: str, path: str, **kwargs) -> Any:
        response = self._send(method, path, headers={"Authorization": self._authorization()}, **kwargs)
        if response.status_code == 401 and self._access is not None:  # the access token expired: renew it once
            self._access = None
            response = self._send(method, path, headers={"Authorization": self._authorization()}, **kwargs)
        return self._answer(response, method, path)

    def _answer(self, response: httpx.Response, method: str, path: str) -> Any:
        where = f"Label Studio at {self.conn.url}"
        if response.status_code == 401:
            raise LabelStudioError(f"{where} refused the API token in {self.conn.token_env} (401): give a member's "
                                   "personal access token, or a legacy token where the organization allows them")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            detail = (body.get("validation_errors") or body.get("detail") or body) if isinstance(body, dict) else (
                body or response.text[:300])
            raise LabelStudioError(f"{where}: {method} {path} answered {response.status_code}: {_one_line(detail)}")
        if body is None:
            raise LabelStudioError(f"{where}: {method} {path} answered {response.status_code} without JSON: is it a "
                                   "Label Studio server (its base URL, e.g. http://host:8080)?")
        return body

    def _pages(self, path: str, params: dict, key: str) -> Iterator[dict]:
        """Every item of a paged list; pages are asked for by number (a proxy may rewrite `next` links)."""
        for page in itertools.count(1):
            data = self._request("GET", path, params={**params, "page": page, "page_size": PAGE_SIZE})
            yield from data[key]
            if page * PAGE_SIZE >= data.get("count", data.get("total", 0)):
                return

    def project(self, labels: list[str], create: bool) -> tuple[Project, bool]:
        """The connection's project (by id, or by exact title) and whether it was created now: with `create`, a
        title no project has gets a new project asking for the task's labels."""
        name, where = self.conn.project, f"Label Studio at {self.conn.url}"
        if name.isdigit():
            return _project(self._request("GET", f"/api/projects/{name}/"), labels), False
        titled = [p for p in self._pages("/api/projects/", {"title": name}, "results") if p["title"] == name]
        if len(titled) > 1:
            raise ProjectMismatch(f"{where} has {len(titled)} projects titled {name!r} (ids "
                                  f"{', '.join(str(p['id']) for p in titled)}): give its id ([label_studio] project "
                                  "or --project)")
        if titled:
            return _project(titled[0], labels), False
        if not create:
            raise ProjectMismatch(f"{where} has no project titled {name!r}: `calscore labels push` creates it")
        created = self._request("POST", "/api/projects/", json={
            "title": name, "label_config": label_config(labels),
            "description": "calscore: rows to label; the model's prediction is shown as a prediction"})
        return _project(created, labels), True

    def tasks(self, project: Project) -> Iterator[dict]:
        """The project's tasks with their annotations."""
        return self._pages("/api/tasks/", {"project": project.id, "fields": "all"}, "tasks")

    def import_tasks(self, project: Project, tasks: list[dict]) -> int:
        return self._request("POST", f"/api/projects/{project.id}/import", json=tasks)["task_count"]

    def annotators(self) -> dict[int, str]:
        """User id -> e-mail address, for the members this token may see."""
        return {user["id"]: user.get("email") or f"user {user['id']}" for user in self._request("GET", "/api/users/")}
