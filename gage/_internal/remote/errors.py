"""What went wrong at a remote, in one line that says what to do: host
not reachable, authentication refused, unknown host key, bucket
missing, bad credentials, permission denied, no space, not found
(`backend.Backend.errors` raises it as a RemoteError)."""

from __future__ import annotations

import errno
import socket

from ..project.remote_spec import RemoteSpec

__all__ = ["bucket_missing", "describe_error"]


def describe_error(e: BaseException, spec: RemoteSpec, path: str = "") -> str:
    """One line that says what went wrong and what to do."""
    cause = _root(e)
    name = type(cause).__name__
    text = str(cause).strip() or name
    host = _host_of(spec.url)
    if name == "PermissionDenied":  # asyncssh's: authentication
        return (
            f"authentication failed at {host}: check the user, key (key-file, "
            "ssh-agent) and ~/.ssh/config"
        )
    if name == "HostKeyNotVerifiable" or "Host key" in text:
        return (
            f"the host key of {host} is not known: add it to ~/.ssh/known_hosts "
            "(connect once with ssh) or name a known-hosts file"
        )
    code = _s3_code(cause)
    if code in ("NoSuchBucket",) or bucket_missing(e):
        return f"bucket missing: {_bucket(spec.url)}: create it or fix the url"
    if code in (
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
    ) or name in (
        "NoCredentialsError",
        "PartialCredentialsError",
    ):
        return "bad credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile"
    if code in ("403", "Forbidden"):
        return (
            f"access refused at {path or spec.url}: bad credentials or no "
            "permission: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the "
            "profile, and the bucket's policy"
        )
    if (
        code in ("AccessDenied", "AllAccessDisabled")
        or isinstance(cause, PermissionError)
        or name == "SFTPPermissionDenied"
    ):
        return f"permission denied: {path or spec.url}: check access rights"
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC or "No space" in text:
        return f"no space left on the remote ({path or spec.url}): free space and try again"
    if (
        isinstance(cause, FileNotFoundError)
        or code in ("NoSuchKey", "404")
        or (name == "SFTPNoSuchFile")
    ):
        return f"not found: {path}"
    if name == "SFTPFailure" and text == "Failure":
        # OpenSSH's sftp-server says only this for ENOSPC, EDQUOT, EFBIG...
        return (
            f"the SSH server failed at {path or spec.url} without saying why "
            "(its SFTP says so of a full disk or quota): check free space and "
            "quota on the server, and try again"
        )
    if _unreachable(cause):
        return (
            f"cannot reach {host}: {text}: check the host and port, and that "
            "it is up (timeout %gs)" % spec.timeout
        )
    return f"{name}: {text}"


def _root(e: BaseException) -> BaseException:
    seen = set()
    while e.__cause__ is not None and id(e) not in seen:
        seen.add(id(e))
        e = e.__cause__
    return e


def _s3_code(e: BaseException) -> str | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None


def bucket_missing(e: BaseException) -> bool:
    return "NoSuchBucket" in repr(e) or "bucket does not exist" in str(e).lower()


def _unreachable(e: BaseException) -> bool:
    names = (
        "ConnectionLost",
        "DisconnectError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "TimeoutError",
        "FSTimeoutError",
        "ClientConnectorError",
        "ConnectionClosedError",
    )
    return (
        isinstance(e, (ConnectionError, TimeoutError, socket.gaierror))
        or (type(e).__name__ in names)
        or (
            isinstance(e, OSError)
            and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
        )
    )


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc or url


def _bucket(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]
