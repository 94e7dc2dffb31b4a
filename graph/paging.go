package graph

import (
	"errors"
	"fmt"
)

// maxPages bounds the pages of one listing or delta round: far beyond any folder (20 million
// messages in pages of 200), it stops an upstream whose links never end.
const maxPages = 100_000

// pager checks the links a listing follows: each must stay on the API's origin (the token goes
// with it), none may repeat within the listing (Graph's paging would then never end), and there are
// at most maxPages.
type pager struct {
	root string
	seen map[string]bool
}

// follow says whether link, the next page's, may be asked for.
func (p *pager) follow(link string) error {
	if !sameOrigin(link, p.root) {
		return fmt.Errorf("graph: @odata.nextLink points away from %s", p.root)
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[link] {
		return errors.New("graph: an @odata.nextLink repeats; Graph's paging is broken for this listing, try again later")
	}
	if len(p.seen) >= maxPages {
		return fmt.Errorf("graph: a listing has more than %d pages; Graph's paging does not end", maxPages)
	}
	p.seen[link] = true
	return nil
}
