"""Log lines: the access log (one line per request) and every other log line, in one format.

    proxy.logs.access   the pipeline step that notes each finished exchange (a record, no text)
    proxy.logs.refusals one event per refusal reason per second at most, with a suppressed count
    proxy.logs.handler  the ``logging`` handler every ``switchback.*`` line goes through
    proxy.logs.sink     the bounded buffer and the writer thread: nothing blocks the event loop
    proxy.logs.lines    the pure formatting: text, JSON lines or logfmt, escaped
    proxy.logs.output   the assembly: where lines go (standard output or ``logging.file``)

A structured event is an ordinary ``logging`` call with ``extra={"event": name, "fields":
{...}}``: modules that emit one (``proxy.traffic.control``, the runtime) import nothing from here.
"""
