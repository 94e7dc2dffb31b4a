package identity

import (
	"html/template"
	"net/http"
)

// The pages a person sees in a browser. They are deliberately plain: enough to sign in, consent and
// read an error, and easy for a test to drive with form posts.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}input{display:block;margin:.4em 0;width:100%}.err{color:#a00}</style>
</head><body><h1>{{.Title}}</h1>{{end}}

{{define "signin"}}{{template "head" .}}
<p>Sign in to <b>{{.App}}</b> ({{.Tenant}}, Microsoft 365 emulator).</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="POST" action="{{.Action}}">
<input type="hidden" name="txn" value="{{.Txn}}">
<label>Email <input type="email" name="username" value="{{.Username}}" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<p>{{.App}} asks for these permissions:</p><ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<button type="submit" name="action" value="accept">Sign in and accept</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form></body></html>{{end}}

{{define "formpost"}}<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" action="{{.Action}}">{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}" />{{end}}<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit" /></noscript></form><script language="javascript">document.forms[0].submit();</script></body></html>{{end}}

{{define "message"}}{{template "head" .}}<p id="message">{{.Message}}</p>{{if .Code}}<p class="err">AADSTS{{.Code}}</p>{{end}}</body></html>{{end}}

{{define "device"}}{{template "head" .}}
<p>Enter the code displayed on your device.</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="POST" action="/devicelogin">
<label>Code <input name="otc" value="{{.Code}}" autocomplete="off"></label>
<label>Email <input type="email" name="username" value="{{.Username}}"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit" name="action" value="accept">Sign in and accept</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form></body></html>{{end}}
`))

type field struct{ Name, Value string }

func render(w http.ResponseWriter, status int, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action *")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, data)
}

func message(w http.ResponseWriter, status int, title, msg string, code int) {
	render(w, status, "message", map[string]any{"Title": title, "Message": msg, "Code": code})
}
