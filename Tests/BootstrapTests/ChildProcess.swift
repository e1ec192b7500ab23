import BookswarmTestSupport

/// `bootstrap-peer` and `bookswarm-bootstrap` children (see `JSONLinesProcess`).
typealias ChildProcess = JSONLinesProcess
