"""The result unions: each field's success type and the typed errors it can return."""

from __future__ import annotations

from typing import Annotated

import strawberry

from unitgate.schema import errors, history, types

ServicesResult = Annotated[
    types.ServiceList
    | errors.CommandTimeout
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ServicesResult"),
]
ServiceResult = Annotated[
    types.ServiceStatus
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.CommandTimeout
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ServiceResult"),
]
RestartServiceResult = Annotated[
    types.RestartSucceeded
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.CommandTimeout
    | errors.RestartFailed
    | errors.ActionNotEnabled
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.Forbidden
    | errors.ActionInProgress
    | errors.RateLimited
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("RestartServiceResult"),
]
ReloadServiceResult = Annotated[
    types.ReloadSucceeded
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.CommandTimeout
    | errors.ReloadFailed
    | errors.ActionNotEnabled
    | errors.ReloadNotSupported
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.Forbidden
    | errors.ActionInProgress
    | errors.RateLimited
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ReloadServiceResult"),
]
StartServiceResult = Annotated[
    types.StartSucceeded
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.CommandTimeout
    | errors.StartFailed
    | errors.ActionNotEnabled
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.Forbidden
    | errors.ActionInProgress
    | errors.RateLimited
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("StartServiceResult"),
]
StopServiceResult = Annotated[
    types.StopSucceeded
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.CommandTimeout
    | errors.StopFailed
    | errors.ActionNotEnabled
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.Forbidden
    | errors.ActionInProgress
    | errors.RateLimited
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("StopServiceResult"),
]
ServiceLogsResult = Annotated[
    types.ServiceLogs
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.JournalUnavailable
    | errors.CommandTimeout
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.Forbidden
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ServiceLogsResult"),
]
ServiceHistoryResult = Annotated[
    history.ServiceHistory
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.JournalUnavailable
    | errors.CommandTimeout
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ServiceHistoryResult"),
]
ServiceLogEvent = Annotated[
    types.LogLine
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.JournalUnavailable
    | errors.CommandTimeout
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.Forbidden
    | errors.InvalidCursor
    | errors.LogStreamLagged
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ServiceLogEvent"),
]
ServiceStatusEvent = Annotated[
    types.ServiceStatus
    | errors.ServiceNotAllowed
    | errors.ServiceNotFound
    | errors.CommandTimeout
    | errors.SystemdUnavailable
    | errors.ServerBusy
    | errors.InstanceNotFound
    | errors.InstanceOffline,
    strawberry.union("ServiceStatusEvent"),
]
