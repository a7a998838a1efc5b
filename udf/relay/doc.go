// Package relay is a source of alert events beside the UDF: an HTTP
// handler that takes the alerts Kapacitor's .post() handler sends (a task's
// .post('URL') or .post().endpoint(), an [[httppost]] endpoint, a topic
// handler of kind post, or a Chronograf rule) and hands each to a Sink,
// which makes it durable before the handler answers 200. It knows
// Kapacitor's .post() body (alert/types.go Data, json.Encode'd: one JSON
// object and a newline) and nothing of where the alerts go or how they are
// kept.
//
// NewHandler serves POST /relay/<endpoint>, where <endpoint> is one
// non-empty path segment (unescaped) naming an endpoint the Sink knows.
// Checks run in this order, and the first that fails answers:
//
//	path is /relay/<endpoint>          else 404 not_found
//	method is POST                     else 405 bad_method (Allow: POST)
//	bearer token, when one is set      else 401 unauthorized (WWW-Authenticate: Bearer)
//	Content-Type is application/json   else 415 bad_content_type
//	  (any parameters, any case)
//	body at most MaxBody bytes         else 413 too_large
//	body read in full                  else 400 read_error
//	body is JSON                       else 400 not_json
//	body is an alert (ParseAlert)      else 400 not_alert
//	Sink.HasEndpoint(endpoint)         else 404 unknown_endpoint
//	Sink.Relay                         200 accepted; on error 200 not_durable
//	                                   (a panic: 500 panic)
//
// Every answer is text/plain and one line: "accepted" (or "accepted, not
// durable"), or the reason for a refusal, which quotes at most a short cut
// of what was received (a content type, an endpoint name, a field) and
// never an Authorization header. The Result names above are what the
// Observer hears, once per request. An error from Sink.Relay is still
// answered 200: the alert is being delivered from memory, and Kapacitor
// never resends a request, so a 5xx would only lose it.
//
// The body is read in full (up to MaxBody) before the answer, and only
// once the path, method, token and content type pass: a request refused
// before that, or whose Content-Length is over MaxBody, is answered
// without reading its body (net/http then drains or closes the
// connection). A body without a Content-Length is read up to MaxBody
// bytes: one byte more and it is refused.
//
// A body Kapacitor did not shape (an [[httppost]] alert-template or
// row-template) is not an alert and is refused. ParseAlert is strict on what
// the Sink relies on (an id, Kapacitor's levels spelt as Kapacitor writes
// them, an RFC 3339 time, an integer duration, rows as wide as their
// columns) and ignores fields it does not know. Numbers in the rows are
// handed over as json.Number, the "time" column as time.Time (see Series). Alert.Details is as
// Kapacitor rendered it (HTML-escaped by default), and the body handed to
// the Sink is byte for byte the one received.
//
// The token is compared in constant time (through SHA-256, so its length
// does not show either) and never logged, answered or counted.
package relay
