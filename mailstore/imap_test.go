package mailstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"fairway/tenant"
)

const multipartMsg = "From: Ann Example <ann@example.net>\r\n" +
	"To: alice@acme.example\r\n" +
	"Subject: Quarterly report\r\n" +
	"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n" +
	"Message-ID: <report@example.net>\r\n" +
	"X-Campaign: autumn-42\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=XYZ\r\n" +
	"\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"The numbers are in: revenue is up.\r\n" +
	"--XYZ\r\n" +
	"Content-Type: application/pdf; name=report.pdf\r\n" +
	"Content-Disposition: attachment; filename=report.pdf\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--XYZ--\r\n"

func TestIMAPLoginDisabledBeforeStartTLS(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	c, err := imapclient.DialInsecure(ie.plain, ie.clientOpts(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Fatalf("clear-text capabilities %v: want LOGINDISABLED and STARTTLS, no AUTH=PLAIN", caps)
	}
	if err := c.Login("alice@acme.example", testPassword).Wait(); err == nil {
		t.Fatal("LOGIN accepted in clear text")
	}
	if err := c.Authenticate(sasl.NewPlainClient("", "alice@acme.example", testPassword)); err == nil {
		t.Fatal("AUTHENTICATE accepted in clear text")
	}

	c2, err := imapclient.DialStartTLS(ie.plain, ie.clientOpts(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	caps, err = c2.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Fatalf("capabilities after STARTTLS %v", caps)
	}
	if err := c2.Login("alice@acme.example", testPassword).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
}

func TestIMAPLoginFullAddressOnly(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{
		{"alice", testPassword, false},
		{"alice@acme.example", "wrong", false},
		{"alice@globex.example", testPassword, false},
		{"ALICE@Acme.Example", testPassword, true},
	} {
		cl := ie.dial(nil)
		err := cl.Login(c.user, c.pass).Wait()
		if (err == nil) != c.ok {
			t.Errorf("LOGIN %q: %v, want ok=%v", c.user, err, c.ok)
		}
		cl2 := ie.dial(nil)
		err = cl2.Authenticate(sasl.NewPlainClient("", c.user, c.pass))
		if (err == nil) != c.ok {
			t.Errorf("AUTHENTICATE PLAIN %q: %v, want ok=%v", c.user, err, c.ok)
		}
	}
	if got := metricValue(ie.srv.metrics.logins.WithLabelValues("failed")); got != 6 {
		t.Errorf("failed logins metric %v, want 6", got)
	}
}

func TestIMAPListSpecialUseAndFolders(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	c := ie.login("alice@acme.example")
	if err := c.Create("Work.2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Work", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Fatalf("CREATE of an existing parent: %v", err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		got[l.Mailbox] = l.Attrs
		if l.Delim != '.' {
			t.Errorf("%s: delimiter %q", l.Mailbox, l.Delim)
		}
	}
	for name, attr := range map[string]imap.MailboxAttr{
		"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash,
		"Junk": imap.MailboxAttrJunk, "Work": imap.MailboxAttrHasChildren, "Work.2026": imap.MailboxAttrHasNoChildren,
		"INBOX": imap.MailboxAttrHasNoChildren,
	} {
		if !hasAttr(got[name], attr) {
			t.Errorf("LIST %s attrs %v, want %s (all: %v)", name, got[name], attr, got)
		}
	}
	if err := ie.store.Deliver(context.Background(), "alice@acme.example", FolderQuarantine, testMessage("q", 10)); err != nil {
		t.Fatal(err)
	}
	list, err = c.List("", "Q%", nil).Collect()
	if err != nil || len(list) != 1 || list[0].Mailbox != FolderQuarantine {
		t.Fatalf("LIST Q%%: %v %v", list, err)
	}
	// Pattern: only the top level.
	list, err = c.List("", "%", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if strings.Contains(l.Mailbox, ".") {
			t.Errorf("LIST %% returned %s", l.Mailbox)
		}
	}
	// Rename keeps UIDs and UIDVALIDITY, and moves children.
	if _, err := appendMsg(t, c, "Work.2026", testMessage("w", 100)); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("Work.2026", &imap.StatusOptions{UIDValidity: true, NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Work", "Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	st2, err := c.Status("Projects.2026", &imap.StatusOptions{UIDValidity: true, NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st2.UIDValidity != st.UIDValidity || *st2.NumMessages != 1 {
		t.Fatalf("after RENAME: %+v, before %+v", st2, st)
	}
	if _, err := c.Status("Work.2026", &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
		t.Fatal("old name still there after RENAME")
	}
	if err := c.Delete("Projects.2026").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Fatal("DELETE INBOX accepted")
	}
	if _, err := os.Stat(filepath.Join(ie.dataDir, "mail", "acme.example", "alice", ".Projects.2026")); !os.IsNotExist(err) {
		t.Fatalf("deleted folder still on disk: %v", err)
	}
	// Subscriptions.
	if err := c.Unsubscribe("Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err = c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.Mailbox == "Junk" {
			t.Error("unsubscribed Junk listed by LIST (SUBSCRIBED)")
		}
	}
	if ns, err := c.Namespace().Wait(); err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '.' {
		t.Fatalf("NAMESPACE %+v %v", ns, err)
	}
}

func hasAttr(l []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range l {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func TestIMAPMessageCommands(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	c := ie.login("alice@acme.example")
	ad, err := appendMsg(t, c, "INBOX", []byte(multipartMsg), imap.FlagFlagged)
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Fatalf("APPENDUID %+v", ad)
	}
	ctx := context.Background()
	ie.clock.Advance(48 * time.Hour)
	for _, s := range []string{"second", "third"} {
		if err := ie.store.Deliver(ctx, "alice@acme.example", "", testMessage(s, 300)); err != nil {
			t.Fatal(err)
		}
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDNext != 4 || sel.UIDValidity != ad.UIDValidity {
		t.Fatalf("SELECT %+v", sel)
	}

	// FETCH of the cached items.
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		Flags: true, InternalDate: true, RFC822Size: true, Envelope: true, UID: true,
	}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("FETCH: %d %v", len(msgs), err)
	}
	m := msgs[0]
	if m.UID != 1 || m.RFC822Size != int64(len(multipartMsg)) || !hasFlagT(m.Flags, imap.FlagFlagged) ||
		m.Envelope == nil || m.Envelope.Subject != "Quarterly report" || len(m.Envelope.From) != 1 ||
		m.Envelope.From[0].Name != "Ann Example" || m.Envelope.MessageID != "report@example.net" {
		t.Fatalf("FETCH 1: %+v env %+v", m, m.Envelope)
	}
	if !msgs[1].InternalDate.Equal(ie.clock.Now().Truncate(time.Second)) {
		t.Errorf("INTERNALDATE %v, want %v", msgs[1].InternalDate, ie.clock.Now())
	}

	// BODYSTRUCTURE, sections, partial; BODY.PEEK does not set \Seen.
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 10}}
	part1 := &imap.FetchItemBodySection{Peek: true, Part: []int{1}}
	hdr := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{partial, part1, hdr},
		Flags:         true,
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH body: %v", err)
	}
	mp, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 || mp.Subtype != "mixed" {
		t.Fatalf("BODYSTRUCTURE %#v", msgs[0].BodyStructure)
	}
	if got := string(msgs[0].FindBodySection(partial)); got != multipartMsg[:10] {
		t.Errorf("BODY[]<0.10> = %q", got)
	}
	if got := string(msgs[0].FindBodySection(part1)); got != "The numbers are in: revenue is up." {
		t.Errorf("BODY[1] = %q", got)
	}
	if got := string(msgs[0].FindBodySection(hdr)); !strings.HasPrefix(got, "From: Ann") || !strings.HasSuffix(got, "\r\n\r\n") {
		t.Errorf("BODY[HEADER] = %q", got)
	}
	if hasFlagT(msgs[0].Flags, imap.FlagSeen) {
		t.Error("BODY.PEEK set \\Seen")
	}
	full := &imap.FetchItemBodySection{}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{full}}).Collect()
	if err != nil || string(msgs[0].FindBodySection(full)) != multipartMsg {
		t.Fatalf("BODY[]: %v", err)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || !hasFlagT(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("BODY[] did not set \\Seen: %v %v", msgs[0].Flags, err)
	}

	// STORE, and the flags reach the file name.
	if _, err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered, "$Label1"}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadDir(filepath.Join(ie.dataDir, "mail", "acme.example", "alice", "cur"))
	foundR := false
	for _, e := range cur {
		if strings.HasSuffix(e.Name(), ":2,R") {
			foundR = true
		}
	}
	if !foundR {
		t.Errorf("no file named :2,R in cur/ after STORE +FLAGS \\Answered: %v", cur)
	}

	// SEARCH: flags, dates, header, text, size, keyword, NOT/OR.
	day := ie.clock.Now().UTC().Truncate(24 * time.Hour)
	for _, sc := range []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"flagged", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []uint32{1}},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{2, 3}},
		{"keyword", imap.SearchCriteria{Flag: []imap.Flag{"$label1"}}, []uint32{2}},
		{"since", imap.SearchCriteria{Since: day}, []uint32{2, 3}},
		{"before", imap.SearchCriteria{Before: day}, []uint32{1}},
		{"header", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Campaign", Value: "AUTUMN"}}}, []uint32{1}},
		{"subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "third"}}}, []uint32{3}},
		{"body", imap.SearchCriteria{Body: []string{"revenue"}}, []uint32{1}},
		{"text", imap.SearchCriteria{Text: []string{"ann@example"}}, []uint32{1}},
		{"larger", imap.SearchCriteria{Larger: 500}, []uint32{1}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagFlagged}}}}, []uint32{2, 3}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagFlagged}}, {Flag: []imap.Flag{imap.FlagAnswered}}}}}, []uint32{1, 2}},
		{"sentbefore", imap.SearchCriteria{SentBefore: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}, []uint32{1, 2, 3}},
	} {
		data, err := c.UIDSearch(&sc.c, nil).Wait()
		if err != nil {
			t.Errorf("SEARCH %s: %v", sc.name, err)
			continue
		}
		got := data.AllUIDs()
		if len(got) != len(sc.want) {
			t.Errorf("SEARCH %s = %v, want %v", sc.name, got, sc.want)
			continue
		}
		for i := range got {
			if uint32(got[i]) != sc.want[i] {
				t.Errorf("SEARCH %s = %v, want %v", sc.name, got, sc.want)
			}
		}
	}

	// COPY with COPYUID, MOVE, then EXPUNGE and UID EXPUNGE.
	cd, err := c.Copy(imap.SeqSetNum(1), "Drafts").Wait()
	if err != nil || cd.DestUIDs.String() != "1" {
		t.Fatalf("COPY %+v %v", cd, err)
	}
	md, err := c.Move(imap.UIDSetNum(3), "Trash").Wait()
	if err != nil || md.DestUIDs.String() != "1" || md.SourceUIDs.String() != "3" {
		t.Fatalf("MOVE %+v %v", md, err)
	}
	st, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS Trash after MOVE: %+v %v", st, err)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Fatalf("after MOVE the client sees %d messages, want 2", n)
	}
	if _, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.UIDExpunge(imap.UIDSetNum(2)).Collect()
	if err != nil || len(exp) != 1 || exp[0] != 2 {
		t.Fatalf("UID EXPUNGE 2: %v %v", exp, err)
	}
	exp, err = c.Expunge().Collect()
	if err != nil || len(exp) != 1 || exp[0] != 1 {
		t.Fatalf("EXPUNGE: %v %v", exp, err)
	}
	st, err = c.Status("INBOX", &imap.StatusOptions{NumMessages: true, Size: true}).Wait()
	if err != nil || *st.NumMessages != 0 || *st.Size != 0 {
		t.Fatalf("STATUS INBOX after expunge: %+v %v", st, err)
	}

	// EXAMINE is read-only.
	if _, err := c.Select("Drafts", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err == nil {
		t.Error("STORE accepted after EXAMINE")
	}
}

func hasFlagT(l []imap.Flag, f imap.Flag) bool { return hasFlag(l, f) }

func TestIMAPIdleSeesDeliveryAndOtherSessions(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	exists := make(chan uint32, 16)
	c := ie.dial(&imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		if d.NumMessages != nil {
			exists <- *d.NumMessages
		}
	}})
	if err := c.Login("alice@acme.example", testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := ie.store.Deliver(context.Background(), "alice@acme.example", "", testMessage("idle", 100)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE after a delivery")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// A file dropped in by another tool shows at the next NOOP.
	writeFile(t, filepath.Join(ie.dataDir, "mail", "acme.example", "alice", "new", "1800000000.M1P1.mutt"), "Subject: mutt\n\nhi\n")
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 2 {
			t.Fatalf("EXISTS %d after a foreign file, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("foreign file not announced at NOOP")
	}
}

func TestIMAPRestartKeepsUIDs(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	c := ie.login("alice@acme.example")
	var uids []imap.UID
	for i := 0; i < 3; i++ {
		ad, err := appendMsg(t, c, "INBOX", testMessage("r", 100))
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, ad.UID)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.UIDSetNum(uids[1]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	ie.restart(IMAPOptions{})
	c = ie.login("alice@acme.example")
	sel2, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel2.UIDValidity != sel.UIDValidity || sel2.UIDNext != sel.UIDNext || sel2.NumMessages != 2 {
		t.Fatalf("after restart %+v, before %+v", sel2, sel)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 2 || msgs[0].UID != uids[0] || msgs[1].UID != uids[2] {
		t.Fatalf("UIDs after restart: %v %v", msgs, err)
	}
}

func TestIMAPAppendOverQuota(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{MailboxQuota: 5000}), IMAPOptions{})
	c := ie.login("alice@acme.example")
	if _, err := appendMsg(t, c, "INBOX", testMessage("fits", 3000)); err != nil {
		t.Fatal(err)
	}
	_, err := appendMsg(t, c, "Sent", testMessage("too much", 3000))
	if imapCode(err) != imap.ResponseCodeOverQuota {
		t.Fatalf("APPEND over quota: %v, want NO [OVERQUOTA]", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Sent").Wait(); imapCode(err) != imap.ResponseCodeOverQuota {
		t.Fatalf("COPY over quota: %v", err)
	}
	// MOVE needs no room: it frees what it takes.
	if _, err := c.Move(imap.SeqSetNum(1), "Sent").Wait(); err != nil {
		t.Fatalf("MOVE at quota: %v", err)
	}
	if _, err := appendMsg(t, c, "NoSuchFolder", testMessage("x", 10)); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Fatalf("APPEND to a missing folder: %v, want [TRYCREATE]", err)
	}
}

func TestIMAPConnectionCaps(t *testing.T) {
	e := newEnv(t, tenant.Policy{IMAPConnections: 3, IMAPUserConnections: 2})
	ie := newIMAPEnv(t, e, IMAPOptions{DefaultTenantConnections: 1, DefaultUserConnections: 1})
	a1 := ie.login("alice@acme.example")
	ie.login("alice@acme.example")
	c := ie.dial(nil)
	err := c.Login("alice@acme.example", testPassword).Wait()
	if imapCode(err) != imap.ResponseCodeLimit {
		t.Fatalf("third connection of alice: %v, want NO [LIMIT]", err)
	}
	ie.login("bob@acme.example")
	c = ie.dial(nil)
	if err := c.Login("bob@acme.example", testPassword).Wait(); imapCode(err) != imap.ResponseCodeLimit {
		t.Fatalf("fourth connection of the tenant: %v, want NO [LIMIT]", err)
	}
	// globex has no policy caps: the server default (1 per user) applies,
	// untouched by acme's use.
	ie.login("carol@globex.example")
	c = ie.dial(nil)
	if err := c.Login("carol@globex.example", testPassword).Wait(); imapCode(err) != imap.ResponseCodeLimit {
		t.Fatalf("second connection of carol: %v, want NO [LIMIT] (default cap 1)", err)
	}
	if got := metricValue(ie.srv.metrics.connections.WithLabelValues("acme")); got != 3 {
		t.Errorf("fairway_imap_connections{tenant=acme} = %v, want 3", got)
	}
	if got := metricValue(ie.srv.metrics.limited.WithLabelValues("acme", "user")); got != 1 {
		t.Errorf("limited{acme,user} = %v, want 1", got)
	}
	if got := metricValue(ie.srv.metrics.limited.WithLabelValues("acme", "tenant")); got != 1 {
		t.Errorf("limited{acme,tenant} = %v, want 1", got)
	}
	// Logging out frees the slot.
	if err := a1.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	a1.Close()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 10000 && metricValue(ie.srv.metrics.connections.WithLabelValues("acme")) != 2; i++ {
		if time.Now().After(deadline) {
			t.Fatal("connection count did not drop after LOGOUT")
		}
		time.Sleep(time.Millisecond)
	}
	ie.login("alice@acme.example")
	if n, err := gatheredSeries(ie, "fairway_imap_connections"); err != nil || n != 2 {
		t.Errorf("gathered %d fairway_imap_connections series (%v), want 2", n, err)
	}
}

func TestIMAPServerConnectionCap(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{MaxConnections: 1})
	ie.dial(nil)
	_, err := imapclient.DialTLS(ie.implicit, ie.clientOpts(nil))
	if err == nil {
		// The greeting is BYE [LIMIT]: the client fails on first use.
		c, _ := imapclient.DialTLS(ie.implicit, ie.clientOpts(nil))
		if c != nil {
			defer c.Close()
			if err := c.Noop().Wait(); err == nil {
				t.Fatal("connection over MaxConnections was served")
			}
		}
	}
}

// TestIMAPPathConfinement: no folder name reaches outside the user's
// Maildir, whatever the command.
func TestIMAPPathConfinement(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	if err := ie.store.Deliver(context.Background(), "carol@globex.example", "", testMessage("secret", 100)); err != nil {
		t.Fatal(err)
	}
	if err := ie.store.Deliver(context.Background(), "bob@acme.example", "", testMessage("bobs", 100)); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, filepath.Join(ie.dataDir, "mail"))
	c := ie.login("alice@acme.example")
	bad := []string{
		"..", "../bob", "../../globex.example/carol", "/etc", "/tmp/x", "a/../../b", `..\bob`,
		".hidden", "a..b", "~carol", "#shared.carol", "INBOX.x", ".", "../bob/.Sent", "a*", "b%", "..%2Fbob",
	}
	for _, name := range bad {
		if err := c.Create(name, nil).Wait(); err == nil {
			t.Errorf("CREATE %q accepted", name)
		}
		if _, err := c.Select(name, nil).Wait(); err == nil {
			t.Errorf("SELECT %q accepted", name)
		}
		if _, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
			t.Errorf("STATUS %q accepted", name)
		}
		if _, err := appendMsg(t, c, name, testMessage("x", 10)); err == nil {
			t.Errorf("APPEND %q accepted", name)
		}
		if err := c.Rename("Trash", name, nil).Wait(); err == nil {
			t.Errorf("RENAME Trash %q accepted", name)
		}
		if err := c.Delete(name).Wait(); err == nil {
			t.Errorf("DELETE %q accepted", name)
		}
	}
	// Names that are valid inside alice's own Maildir stay there.
	for _, name := range []string{"bob@acme.example", "carol@globex.example", "Work."} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Errorf("CREATE %q: %v", name, err)
		}
		if _, err := appendMsg(t, c, strings.TrimSuffix(name, "."), testMessage("x", 10)); err != nil {
			t.Errorf("APPEND %q: %v", name, err)
		}
	}
	after := snapshotTree(t, filepath.Join(ie.dataDir, "mail"))
	aliceRoot := filepath.Join("acme.example", "alice")
	for p := range after {
		if _, ok := before[p]; ok {
			continue
		}
		if !strings.HasPrefix(p, aliceRoot+string(filepath.Separator)) && p != aliceRoot && !strings.HasPrefix(p, "index") {
			t.Errorf("a command created %s outside alice's Maildir", p)
		}
	}
	for p := range before {
		if strings.HasPrefix(p, "globex.example") || strings.HasPrefix(p, filepath.Join("acme.example", "bob")) {
			if _, ok := after[p]; !ok {
				t.Errorf("%s of another user disappeared", p)
			}
		}
	}
}

func snapshotTree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = true
		return nil
	})
	return out
}

// TestIMAPCrossTenant: a user of tenant acme sees and reaches nothing of
// tenant globex, nor of another acme user.
func TestIMAPCrossTenant(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	ctx := context.Background()
	if err := ie.store.Deliver(ctx, "carol@globex.example", "", testMessage("globex-secret", 100)); err != nil {
		t.Fatal(err)
	}
	if err := ie.store.Deliver(ctx, "carol@globex.example", "Private", testMessage("globex-private", 100)); err != nil {
		t.Fatal(err)
	}
	if err := ie.store.Deliver(ctx, "alice@acme.example", "", testMessage("alice-own", 100)); err != nil {
		t.Fatal(err)
	}
	c := ie.login("alice@acme.example")
	for _, pattern := range []string{"*", "%", "*carol*", "../*", "#*", "~*"} {
		for _, ref := range []string{"", "..", "~carol", "#shared", "/"} {
			list, err := c.List(ref, pattern, nil).Collect()
			if err != nil {
				continue
			}
			for _, l := range list {
				if l.Mailbox == "Private" || strings.Contains(strings.ToLower(l.Mailbox), "carol") || strings.Contains(l.Mailbox, "globex") {
					t.Errorf("LIST %q %q shows %q", ref, pattern, l.Mailbox)
				}
			}
		}
	}
	for _, name := range []string{"Private", "../../globex.example/carol", "carol@globex.example", "~carol", "#user.carol", "../carol"} {
		if _, err := c.Select(name, nil).Wait(); err == nil {
			t.Errorf("alice selected %q", name)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{"globex"}}, nil).Wait()
	if err != nil || len(data.AllUIDs()) != 0 {
		t.Fatalf("alice's search found globex mail: %v %v", data, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "alice-own" {
		t.Fatalf("alice's INBOX: %v %v", msgs, err)
	}
	// And carol, logging in at the same time, sees only hers.
	c2 := ie.login("carol@globex.example")
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err = c2.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "globex-secret" {
		t.Fatalf("carol's INBOX: %v %v", msgs, err)
	}
}

func TestIMAPConcurrentSessionsShareUpdates(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	// go-imap's client runs the handler in its own goroutine.
	flagUpdates := make(chan []imap.Flag, 8)
	c1 := ie.dial(&imapclient.UnilateralDataHandler{Fetch: func(m *imapclient.FetchMessageData) {
		var flags []imap.Flag
		for item := m.Next(); item != nil; item = m.Next() {
			if f, ok := item.(imapclient.FetchItemDataFlags); ok {
				flags = f.Flags
			}
		}
		flagUpdates <- flags
	}})
	if err := c1.Login("alice@acme.example", testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	c2 := ie.login("alice@acme.example")
	if _, err := appendMsg(t, c2, "INBOX", testMessage("shared", 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case flags := <-flagUpdates:
		if !hasFlag(flags, imap.FlagSeen) {
			t.Fatalf("session 1 got FETCH FLAGS %v, want \\Seen", flags)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session 1 got no FETCH FLAGS after session 2's STORE")
	}
}

// TestIMAPConcurrentStress runs deliveries, STORE, FETCH, SEARCH and
// EXPUNGE from several sessions at once on one folder (for -race).
func TestIMAPConcurrentStress(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if err := ie.store.Deliver(ctx, "alice@acme.example", "", testMessage("seed", 200)); err != nil {
			t.Fatal(err)
		}
	}
	clients := []*imapclient.Client{ie.login("alice@acme.example"), ie.login("alice@acme.example"), ie.login("alice@acme.example")}
	for _, c := range clients {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 4)
	go func() {
		var err error
		for i := 0; i < 15 && err == nil; i++ {
			err = ie.store.Deliver(ctx, "alice@acme.example", "", testMessage("more", 200))
		}
		errc <- err
	}()
	go func() {
		var err error
		for i := 0; i < 15 && err == nil; i++ {
			op := imap.StoreFlagsAdd
			if i%2 == 1 {
				op = imap.StoreFlagsDel
			}
			_, err = clients[0].Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: op, Flags: []imap.Flag{imap.FlagFlagged, "$k"}}, nil).Collect()
		}
		errc <- err
	}()
	go func() {
		var err error
		for i := 0; i < 15 && err == nil; i++ {
			_, err = clients[1].Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
				Flags: true, Envelope: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
			}).Collect()
			if imapCode(err) == "EXPUNGEISSUED" {
				err = nil // another session expunged one meanwhile (RFC 5530)
			}
			if err == nil {
				_, err = clients[1].UIDSearch(&imap.SearchCriteria{Text: []string{"fox"}}, nil).Wait()
			}
		}
		errc <- err
	}()
	go func() {
		var err error
		for i := 0; i < 5 && err == nil; i++ {
			_, err = clients[2].Store(imap.UIDSetNum(imap.UID(2*i+1)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
			if err == nil {
				_, err = clients[2].Expunge().Collect()
			}
		}
		errc <- err
	}()
	for i := 0; i < 4; i++ {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("stress workers did not finish")
		}
	}
	st, err := clients[0].Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 10+15-5 {
		t.Fatalf("STATUS after stress: %v %v, want 20", st, err)
	}
}

// The in-memory index is capped: folders no session has selected are
// dropped beyond it and load again, unchanged, when used.
func TestIMAPCacheCap(t *testing.T) {
	ie := newIMAPEnv(t, newEnv(t, tenant.Policy{}), IMAPOptions{})
	ie.store.maxCached = 4
	c := ie.login("alice@acme.example")
	for _, folder := range []string{"INBOX", "Sent"} {
		for i := 0; i < 3; i++ {
			if _, err := appendMsg(t, c, folder, testMessage(folder, 100), imap.FlagSeen); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, folder := range []string{"INBOX", "Sent", "INBOX"} {
		st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true}).Wait()
		if err != nil || *st.NumMessages != 3 || *st.NumUnseen != 0 || st.UIDNext != 4 {
			t.Fatalf("STATUS %s: %+v %v", folder, st, err)
		}
	}
	ie.store.cacheMu.Lock()
	cached := ie.store.cachedMsgs
	ie.store.cacheMu.Unlock()
	if cached > 4 {
		t.Fatalf("%d messages cached, cap 4", cached)
	}
	if _, err := c.Select("Sent", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(msgs) != 3 || msgs[2].UID != 3 || !hasFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("FETCH after reload: %v %v", msgs, err)
	}
}

func TestIMAPLoginThrottledAfterRepeatedFailures(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	limiter := tenant.NewAuthLimiter(tenant.AuthLimiterOptions{Failures: 3, Refill: time.Minute})
	ie := newIMAPEnv(t, e, IMAPOptions{AuthLimiter: limiter})
	for range 3 {
		if err := ie.dial(nil).Login("alice@acme.example", "guess-guess").Wait(); err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	// Now the right password is refused too, without being checked.
	err := ie.dial(nil).Login("alice@acme.example", testPassword).Wait()
	if imapCode(err) != imap.ResponseCodeUnavailable {
		t.Fatalf("login after 3 failures: %v, want NO [UNAVAILABLE]", err)
	}
	e.clock.Advance(61 * time.Second)
	if err := ie.dial(nil).Login("alice@acme.example", testPassword).Wait(); err != nil {
		t.Fatalf("login after the refill: %v", err)
	}
}
