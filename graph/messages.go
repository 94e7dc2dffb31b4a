package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// decodeMessage reads a message from an answer.
func decodeMessage(body []byte, what string) (*Message, error) {
	var w wireMessage
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("graph: unreadable %s: %w", what, err)
	}
	return w.message(), nil
}

// FlagUpdate is a message's follow-up flag and read state, for SetFlags (nil: unchanged).
type FlagUpdate struct {
	IsRead  *bool
	Flagged *bool
}

// SetFlags PATCHes isRead and flag.flagStatus (flagged / notFlagged); with nothing to change it
// sends nothing.
func (c *Client) SetFlags(ctx context.Context, id string, u FlagUpdate) error {
	patch := map[string]any{}
	if u.IsRead != nil {
		patch["isRead"] = *u.IsRead
	}
	if u.Flagged != nil {
		status := "notFlagged"
		if *u.Flagged {
			status = "flagged"
		}
		patch["flag"] = wireFlag{FlagStatus: status}
	}
	if len(patch) == 0 {
		return nil
	}
	return c.call(ctx, "PATCH", "/messages/"+url.PathEscape(id), patch, nil)
}

// Copy copies a message into a folder (a well-known name or an id) and returns the copy, which has
// an id of its own.
func (c *Client) Copy(ctx context.Context, id, destFolder string) (*Message, error) {
	return c.relocate(ctx, id, "copy", destFolder)
}

// relocate moves or copies a message (action "move" or "copy").
func (c *Client) relocate(ctx context.Context, id, action, destFolder string) (*Message, error) {
	var w wireMessage
	if err := c.call(ctx, "POST", "/messages/"+url.PathEscape(id)+"/"+action, map[string]string{"destinationId": destFolder}, &w); err != nil {
		return nil, err
	}
	return w.message(), nil
}

// PermanentDelete deletes a message for good (POST .../permanentDelete), not to Deleted Items
// (https://learn.microsoft.com/graph/api/message-permanentdelete).
func (c *Client) PermanentDelete(ctx context.Context, id string) error {
	return c.call(ctx, "POST", "/messages/"+url.PathEscape(id)+"/permanentDelete", nil, nil)
}
