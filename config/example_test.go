package config_test

import (
	"errors"
	"fmt"

	"github.com/mailoauth/mailoauth/config"
)

// An account described in Go gets the defaults and the checks a configuration file gets, with
// errors that name the Go fields.
func ExampleAccount_Check() {
	acc := &config.Account{
		Flow:     "devic",
		ClientID: "11111111-2222-3333-4444-555555555555",
	}
	err := acc.Check()
	fmt.Println(err)

	var problems config.Errors
	if errors.As(err, &problems) {
		fmt.Println(problems[0].Field)
	}

	acc.Flow = config.FlowDevice
	acc.Email = "alice@contoso.com"
	if err := acc.Check(); err != nil {
		panic(err)
	}
	fmt.Println(acc.Protocols, acc.Cloud, acc.Tenant, acc.Mechanism)
	fmt.Println(acc.Name)
	// Output:
	// invalid Account.Flow "devic": use one of interactive, device, client_credentials, auth_code_web, refresh_token, password
	// Account.Flow
	// [imap smtp] global organizations xoauth2
	// organizations_11111111-2222-3333-4444-555555555555_alice-contoso.com
}

// Parse reads the same account from TOML; its errors name the file, the line and the key.
func ExampleParse() {
	_, err := config.Parse("config.toml", []byte(`
[accounts.work]
flow = "devic"
client_id = "11111111-2222-3333-4444-555555555555"
`), 0o600)
	fmt.Println(err)
	// Output:
	// invalid flow `devic` in [accounts.work] at config.toml:3: use one of interactive, device, client_credentials, auth_code_web, refresh_token, password
}
