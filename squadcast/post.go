package squadcast

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// PostOnce renders ev in e's format (FormatKapacitor when empty) and posts
// it to e's URL once, without the outbox or retries, with e's headers and
// timeout (DefaultTimeout when zero), following only 307 and 308
// redirects. It is for one-off checks such as the send-test command. It
// returns the response's status code; a status other than 2xx is an error
// too: a *DeliveryError holding a *StatusError and the start of the
// response body. Errors never contain the URL's path or query.
func PostOnce(ctx context.Context, e Endpoint, ev udf.Event) (int, error) {
	if e.Format == "" {
		e.Format = FormatKapacitor
	}
	if e.Timeout == 0 {
		e.Timeout = DefaultTimeout
	}
	if e.Name == "" {
		e.Name = "test"
	}
	if err := e.validate(); err != nil {
		return 0, err
	}
	body, err := Render(e.Format, ev)
	if err != nil {
		return 0, fmt.Errorf("render the %s payload: %w", e.Format, err)
	}
	secrets := urlSecrets(e.URL)
	ctx, cancel := context.WithTimeoutCause(ctx, e.Timeout, &AttemptTimeoutError{Timeout: e.Timeout})
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return 0, redactError(fmt.Errorf("build request: %w", err), secrets)
	}
	for k, v := range e.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", DefaultUserAgent)
	}
	client := &http.Client{CheckRedirect: checkRedirect}
	resp, err := client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		return 0, redactError(&DeliveryError{Attempts: 1, Err: err}, secrets)
	}
	if Classify(resp.StatusCode) == OutcomeDelivered {
		drainBody(resp.Body)
		return resp.StatusCode, nil
	}
	de := &DeliveryError{Attempts: 1, StatusCode: resp.StatusCode, Body: readErrorBody(resp.Body),
		Err: &StatusError{StatusCode: resp.StatusCode}}
	return resp.StatusCode, redactError(de, secrets)
}
