// Package storetest lets tests put a token store into states a real process reaches only with time:
// access tokens that have aged into their refresh margin. It is for tests only and must never be
// imported by code that ships.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/store"
)

// AgeAccessTokens makes every access token stored for an account expire at exp, as if it had been
// issued most of its lifetime ago: under key (the account's entry, "account/NAME") and under each
// of its users' entries (key + "/user/…"). MSAL stores a token only while it is outside its own
// 5-minute margin and reads the real clock, so there is no other way to have one inside the margin
// in the store.
func AgeAccessTokens(tb testing.TB, st store.Store, key string, exp time.Time) {
	tb.Helper()
	keys, err := st.Keys(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	aged := 0
	for _, k := range keys {
		if k != key && !strings.HasPrefix(k, key+"/") {
			continue
		}
		if err := st.Update(context.Background(), k, func(old []byte) ([]byte, error) { return age(old, exp) }); err != nil {
			tb.Fatal(err)
		}
		aged++
	}
	if aged == 0 {
		tb.Fatalf("no entry %s in the store", key)
	}
}

func age(old []byte, exp time.Time) ([]byte, error) {
	var ent map[string]json.RawMessage
	if err := json.Unmarshal(old, &ent); err != nil {
		return nil, err
	}
	var blob map[string]map[string]map[string]any
	if err := json.Unmarshal(ent["msal"], &blob); err != nil {
		return nil, err
	}
	if len(blob["AccessToken"]) == 0 {
		return nil, errors.New("no access token stored")
	}
	for _, at := range blob["AccessToken"] {
		at["expires_on"] = strconv.FormatInt(exp.Unix(), 10)
	}
	var err error
	if ent["msal"], err = json.Marshal(blob); err != nil {
		return nil, err
	}
	return json.Marshal(ent)
}
