package identity

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// aadError is an error as Entra's token endpoint writes it: an OAuth error code, an AADSTS number and
// its text. Texts marked "observed" are copied from real responses (research/exchange-wire.md §6, with
// sources there); the rest follow the summaries of Microsoft's error-code reference
// (learn.microsoft.com/entra/identity-platform/reference-error-codes) and may differ in wording.
type aadError struct {
	status   int
	code     string // OAuth error: invalid_grant, invalid_client, ...
	aadsts   int
	desc     string
	suberror string
}

func aad(status int, code string, n int, suberror, format string, args ...any) *aadError {
	return &aadError{status: status, code: code, aadsts: n, suberror: suberror, desc: fmt.Sprintf(format, args...)}
}

// The catalogue. Each constructor is used where Entra produces that error.
func errBadSecret(appID string) *aadError { // observed
	return aad(401, "invalid_client", 7000215, "", "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", appID)
}
func errExpiredSecret(appID string) *aadError { // observed
	return aad(401, "invalid_client", 7000222, "", "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", appID)
}
func errUnknownApp(appID, tenant string) *aadError { // observed
	return aad(400, "unauthorized_client", 700016, "", "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", appID, tenant)
}

// errNoEnterpriseApp: Entra has required a service principal for every app since 31 March 2026. Code,
// OAuth error and text as Entra returns them to a client-credentials request (quoted in the Teams SDK's
// "Authentication Troubleshooting", microsoft.github.io/teams-sdk/teams/app-authentication/troubleshooting,
// a 401 from /{tenant}/oauth2/v2.0/token); the other grants are assumed to get the same answer.
func errNoEnterpriseApp(appID, tenantID string) *aadError { // observed
	return aad(401, "invalid_client", 7000229, "", "The client application %s is missing service principal in the tenant %s. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119", appID, tenantID)
}
func errUnknownTenant(code, tenant string) *aadError { // observed
	return aad(400, code, 90002, "", "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant)
}
func errNoConsent(appID, appName string) *aadError { // observed
	return aad(400, "invalid_grant", 65001, "consent_required", "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", appID, appName)
}
func errInvalidScope(scope string) *aadError { // observed
	return aad(400, "invalid_scope", 70011, "", "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)
}
func errNeedDotDefault(scope string) *aadError { // observed
	return aad(400, "invalid_scope", 1002012, "", "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
}
func errTwoResources(scope string) *aadError {
	return aad(400, "invalid_scope", 28000, "", "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", scope)
}
func errUnknownResource(resource, tenant string) *aadError {
	return aad(400, "invalid_resource", 500011, "", "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, tenant)
}
func errRefreshExpired(issued time.Time, inactivity time.Duration) *aadError { // observed
	return aad(400, "invalid_grant", 700082, "bad_token", "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.", issued.UTC().Format("2006-01-02T15:04:05.0000000Z"), dotnetDuration(inactivity))
}

// dotnetDuration writes a duration as .NET's TimeSpan does (d.hh:mm:ss), the form Entra's texts use.
func dotnetDuration(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return fmt.Sprintf("%d.%02d:%02d:%02d", days, int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60)
}

func errRefreshRevoked(issued, validFrom time.Time) *aadError {
	return aad(400, "invalid_grant", 50173, "bad_token", "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", issued.UTC().Format("2006-01-02T15:04:05.0000000Z"), validFrom.UTC().Format("2006-01-02T15:04:05.0000000Z"))
}
func errUserNotInTenant(upn, homeTenantID, tenantName, appID, appName string) *aadError { // observed shape
	return aad(400, "invalid_grant", 50020, "", "User account '%s' from identity provider 'https://sts.windows.net/%s/' does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.", upn, homeTenantID, tenantName, appID, appName)
}
func errUserUnknown(tenant string) *aadError { // observed
	return aad(400, "invalid_grant", 50034, "", "The user account {EmailHidden} does not exist in the %s directory. To sign into this application, the account must be added to the directory.", tenant)
}
func errBadPassword() *aadError { // observed
	return aad(400, "invalid_grant", 50126, "", "Error validating credentials due to invalid username or password.")
}
func errMFARequired(resource string) *aadError { // observed
	return aad(400, "invalid_grant", 50076, "basic_action", "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", resource)
}
func errNoCredential() *aadError { // observed
	return aad(401, "invalid_client", 7000218, "", "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
}
func errPublicWithSecret() *aadError { // observed
	return aad(400, "invalid_client", 700025, "", "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
}
func errMalformed() *aadError { // observed
	return aad(400, "invalid_grant", 9002313, "", "Invalid request. Request is malformed or invalid.")
}
func errMissingParam(name string) *aadError {
	return aad(400, "invalid_request", 900144, "", "The request body must contain the following parameter: '%s'.", name)
}
func errUnsupportedGrant(grant string) *aadError {
	return aad(400, "unsupported_grant_type", 70003, "", "The app requested an unsupported grant type '%s'.", grant)
}
func errPending() *aadError { // observed
	return aad(400, "authorization_pending", 70016, "", "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
}
func errSlowDown() *aadError {
	return aad(400, "slow_down", 70016, "", "OAuth 2.0 device flow error. Authorization is pending. Poll less often.")
}
func errDeviceExpired() *aadError { // observed text; error value per the device-code documentation
	return aad(400, "expired_token", 70020, "", "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
}
func errDeviceDeclined() *aadError { // text unconfirmed
	return aad(400, "authorization_declined", 70000, "", "The user declined the authorization request.")
}
func errBadDeviceCode() *aadError {
	return aad(400, "bad_verification_code", 70000, "", "The provided value for the input parameter 'device_code' is not valid.")
}
func errCodeRedeemed() *aadError {
	return aad(400, "invalid_grant", 54005, "", "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
}
func errCodeExpired() *aadError {
	return aad(400, "invalid_grant", 70008, "", "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
}
func errVerifierMismatch() *aadError {
	return aad(400, "invalid_grant", 501481, "", "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
}
func errReplyMismatch(got, want string) *aadError {
	return aad(400, "invalid_grant", 500112, "", "The reply address '%s' does not match the reply address '%s' provided when requesting Authorization code.", got, want)
}
func errRedirectMismatch(uri, appID string) *aadError {
	return aad(400, "invalid_request", 50011, "", "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", uri, appID)
}
func errNotMultiTenant(appID, appName string) *aadError {
	return aad(400, "invalid_request", 50194, "", "Application '%s'(%s) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.", appID, appName)
}
func errNoTenantInfo() *aadError {
	return aad(400, "invalid_request", 50059, "", "No tenant-identifying information found in either the request or implied by any provided credentials.")
}
func errAssertionMalformed() *aadError {
	return aad(401, "invalid_client", 50027, "", "JWT token is invalid or malformed.")
}
func errAssertionKeyUnknown(thumb string) *aadError {
	return aad(401, "invalid_client", 700027, "", "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are not using the global cloud.]", thumb)
}
func errAssertionSignature() *aadError {
	return aad(401, "invalid_client", 700027, "", "Client assertion failed signature validation.")
}
func errAssertionTime() *aadError {
	return aad(401, "invalid_client", 700024, "", "Client assertion is not within its valid time range.")
}
func errAssertionClient() *aadError {
	return aad(401, "invalid_client", 700021, "", "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://aka.ms/certCreds .")
}
func errAssertionAudience() *aadError {
	return aad(401, "invalid_client", 700023, "", "Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds .")
}
func errAssertionType() *aadError {
	return aad(400, "invalid_request", 90014, "", "The required field 'client_assertion_type' is missing or not 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.")
}
func errTooLarge() *aadError {
	return aad(413, "invalid_request", 90033, "", "The request body is too large.")
}
func errDeclinedConsent() *aadError {
	return aad(400, "access_denied", 65004, "", "User declined to consent to access the app.")
}
func errUnavailable(status int) *aadError {
	return aad(status, "temporarily_unavailable", 90033, "", "A transient error has occurred. Please try again.")
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// writeAAD writes an error in Entra's JSON shape. The correlation id echoes the client's
// client-request-id when it sent one, as Entra does.
func (s *Server) writeAAD(w http.ResponseWriter, r *http.Request, e *aadError) {
	trace := world.NewID()
	corr := r.Header.Get("client-request-id")
	if !guidRE.MatchString(corr) {
		corr = world.NewID()
	}
	ts := s.now().UTC().Format("2006-01-02 15:04:05Z")
	body := map[string]any{
		"error": e.code,
		// Entra separates the suffix with \r\n in documented samples; some recent pastes show a space.
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", e.aadsts, e.desc, trace, corr, ts),
		"error_codes":       []int{e.aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", baseURL(r), e.aadsts),
	}
	if e.suberror != "" {
		body["suberror"] = e.suberror
	}
	s.log.Debug("identity: error", "path", r.URL.Path, "error", e.code, "aadsts", e.aadsts)
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
