module github.com/edgehub/edgehub/bench

go 1.26.8

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0
	github.com/edgehub/edgehub v0.0.0-00010101000000-000000000000
	github.com/gobwas/ws v1.5.0
	golang.org/x/sys v0.49.0
	gonum.org/v1/plot v0.17.0
)

require (
	codeberg.org/go-fonts/liberation v0.5.0 // indirect
	codeberg.org/go-latex/latex v0.2.0 // indirect
	codeberg.org/go-pdf/fpdf v0.11.1 // indirect
	git.sr.ht/~sbinet/gg v0.7.0 // indirect
	github.com/ajstarks/svgo v0.0.0-20211024235047-1546f124cd8b // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	golang.org/x/image v0.30.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

// The load tooling drives the node of this checkout, built from it.
replace github.com/edgehub/edgehub => ../

// A replace applies only in the main module: the node built from this
// module must carry the same patched netpoll as the core's own build.
replace github.com/cloudwego/netpoll => ../third_party/netpoll/src
