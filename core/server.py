"""uvicorn's httptools protocol with a bound on the request head (``--http core.server:...``).

uvicorn's pure-Python h11 parser refuses a request head it cannot fit in its buffer; with
httptools (installed for speed, docs/performance.md) uvicorn has no such limit, and httptools
buffers a header value whole before handing it over: any client, before any authentication,
could make a worker hold megabytes per connection. This protocol counts the bytes fed while a
head is incomplete and answers 400 (as h11 did, and as uvicorn does for any unparsable request)
once they pass ``MAX_REQUEST_HEAD_BYTES``. Bodies are not counted (their limit is the 413).
"""

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Far above a real head: a Better Auth token is at most 8 KiB (auth.MAX_TOKEN_BYTES), and
# browsers cap cookies near 4 KiB each. Node's default is 16 KiB, nginx's 4 x 8 KiB.
MAX_REQUEST_HEAD_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _head_complete = False

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self._head_complete or self.transport.is_closing():
            return
        # The head is still incomplete: all of this chunk is buffered by the parser (a chunk
        # that also ended the previous message is counted whole: at most one read too many).
        self._head_bytes += len(data)
        if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            msg = "Request header fields too large."
            self.logger.warning(msg)
            self.send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_complete = False

    def on_headers_complete(self) -> None:
        self._head_complete = True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on a kept-alive connection is the next request's head.
        self._head_complete = False
        self._head_bytes = 0
