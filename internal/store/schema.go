package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/docshield/voice-worker/schemas"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Schema is a collection's $jsonSchema validator (schemas/mongodb), read
// once. MongoDB evaluates it on every write once `worker migrate` has
// applied it; Check evaluates the same document in Go, for servers that
// cannot (FerretDB v1.24 refuses validators) and for `worker campaign
// check`, which must say which field is wrong on documents written before.
//
// Only the keywords the schema files use are understood, and a file with
// any other keyword fails to load, so Check never silently ignores a rule
// MongoDB would apply.
type Schema struct {
	coll string
	raw  []byte // the file, for the validator command
	root *schemaNode
}

// schemaNode is one (sub)schema in MongoDB's $jsonSchema dialect.
type schemaNode struct {
	BSONType             bsonTypes              `json:"bsonType"`
	Enum                 []any                  `json:"enum"`
	Required             []string               `json:"required"`
	Properties           map[string]*schemaNode `json:"properties"`
	PatternProperties    map[string]*schemaNode `json:"patternProperties"`
	AdditionalProperties *additional            `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
	Minimum              *float64               `json:"minimum"`
	Maximum              *float64               `json:"maximum"`
	MultipleOf           *float64               `json:"multipleOf"`
	MinLength            *int                   `json:"minLength"`
	MaxLength            *int                   `json:"maxLength"`
	MaxProperties        *int                   `json:"maxProperties"`
	Pattern              string                 `json:"pattern"`
	Title                string                 `json:"title"`
	Description          string                 `json:"description"`

	pattern  *regexp.Regexp
	patterns []namedPattern
}

type namedPattern struct {
	re     *regexp.Regexp
	schema *schemaNode
}

// bsonTypes is bsonType as a string or a list of strings.
type bsonTypes []string

func (t *bsonTypes) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = bsonTypes{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("bsonType: want a string or a list of strings: %w", err)
	}
	*t = many
	return nil
}

// additional is additionalProperties: false, true or a schema.
type additional struct {
	allowed bool
	schema  *schemaNode
}

func (a *additional) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &a.allowed); err == nil {
		return nil
	}
	a.allowed = true
	return strictJSON(b, &a.schema)
}

// knownBSONTypes are the bsonType names MongoDB accepts that the schema
// files may use, with the alias "number".
var knownBSONTypes = []string{"double", "string", "object", "array", "binData", "objectId", "bool", "date",
	"null", "regex", "int", "timestamp", "long", "decimal", "number"}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// LoadSchema reads a collection's validator from schemas/mongodb.
func LoadSchema(coll string) (*Schema, error) {
	raw, err := schemas.Collection(coll)
	if err != nil {
		return nil, err
	}
	var root schemaNode
	if err := strictJSON(raw, &root); err != nil {
		return nil, fmt.Errorf("store: schema of %s: %w", coll, err)
	}
	if err := root.compile(""); err != nil {
		return nil, fmt.Errorf("store: schema of %s: %w", coll, err)
	}
	return &Schema{coll: coll, raw: raw, root: &root}, nil
}

func (n *schemaNode) compile(path string) error {
	for _, t := range n.BSONType {
		if !slices.Contains(knownBSONTypes, t) {
			return fmt.Errorf("%s: unknown bsonType %q", orRoot(path), t)
		}
	}
	var err error
	if n.Pattern != "" {
		if n.pattern, err = regexp.Compile(n.Pattern); err != nil {
			return fmt.Errorf("%s: pattern: %w", orRoot(path), err)
		}
	}
	for name, sub := range n.Properties {
		if err := sub.compile(join(path, name)); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(n.PatternProperties) {
		re, err := regexp.Compile(p)
		if err != nil {
			return fmt.Errorf("%s: patternProperties: %w", orRoot(path), err)
		}
		sub := n.PatternProperties[p]
		if err := sub.compile(join(path, p)); err != nil {
			return err
		}
		n.patterns = append(n.patterns, namedPattern{re, sub})
	}
	if n.AdditionalProperties != nil && n.AdditionalProperties.schema != nil {
		if err := n.AdditionalProperties.schema.compile(join(path, "*")); err != nil {
			return err
		}
	}
	if n.Items != nil {
		return n.Items.compile(path + "[]")
	}
	return nil
}

// Collection is the collection the schema validates.
func (s *Schema) Collection() string { return s.coll }

// Validator is the collMod/create option {$jsonSchema: ...} for MongoDB.
func (s *Schema) Validator() (bson.D, error) {
	var doc bson.D
	if err := bson.UnmarshalExtJSON(s.raw, false, &doc); err != nil {
		return nil, fmt.Errorf("store: schema of %s: %w", s.coll, err)
	}
	return bson.D{{Key: "$jsonSchema", Value: doc}}, nil
}

// Violation is one way a document breaks its collection's schema, named
// by its field path ("next_attempt_at", "variables.doctor").
type Violation struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (v Violation) String() string { return v.Field + ": " + v.Problem }

// Check evaluates the schema against one document, as MongoDB's validator
// would, and lists every violation (none: MongoDB accepts the write).
func (s *Schema) Check(doc bson.Raw) []Violation {
	var out []Violation
	s.root.check("", bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}, &out)
	return out
}

func (n *schemaNode) check(path string, v bson.RawValue, out *[]Violation) {
	add := func(format string, args ...any) {
		*out = append(*out, Violation{Field: orRoot(path), Problem: fmt.Sprintf(format, args...)})
	}
	if len(n.BSONType) > 0 && !slices.ContainsFunc(n.BSONType, func(t string) bool { return typeMatches(t, v.Type) }) {
		add("is %s %s, want %s", article(TypeName(v.Type)), TypeName(v.Type), strings.Join(n.BSONType, " or "))
		return // the other rules are about the right type
	}
	if len(n.Enum) > 0 && !slices.ContainsFunc(n.Enum, func(e any) bool { return enumEquals(e, v) }) {
		add("%s is not one of %s", describe(v), enumList(n.Enum))
	}
	switch v.Type {
	case bson.TypeString:
		n.checkString(v.StringValue(), add)
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		n.checkNumber(toFloat(v), add)
	case bson.TypeEmbeddedDocument:
		n.checkObject(path, v.Document(), out, add)
	case bson.TypeArray:
		if n.Items != nil {
			vals, _ := v.Array().Values()
			for i, item := range vals {
				n.Items.check(fmt.Sprintf("%s[%d]", path, i), item, out)
			}
		}
	}
}

func (n *schemaNode) checkString(s string, add func(string, ...any)) {
	length := utf8.RuneCountInString(s)
	if n.MinLength != nil && length < *n.MinLength {
		add("is %d characters, at least %d required", length, *n.MinLength)
	}
	if n.MaxLength != nil && length > *n.MaxLength {
		add("is %d characters, at most %d allowed", length, *n.MaxLength)
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		add("does not match %s", n.Pattern)
	}
}

func (n *schemaNode) checkNumber(f float64, add func(string, ...any)) {
	if n.Minimum != nil && f < *n.Minimum {
		add("is %v, at least %v required", f, *n.Minimum)
	}
	if n.Maximum != nil && f > *n.Maximum {
		add("is %v, at most %v allowed", f, *n.Maximum)
	}
	if n.MultipleOf != nil && math.Mod(f, *n.MultipleOf) != 0 {
		add("is %v, want a multiple of %v", f, *n.MultipleOf)
	}
}

func (n *schemaNode) checkObject(path string, d bson.Raw, out *[]Violation, add func(string, ...any)) {
	elems, _ := d.Elements()
	present := make(map[string]bool, len(elems))
	for _, e := range elems {
		present[e.Key()] = true
	}
	for _, r := range n.Required {
		if !present[r] {
			*out = append(*out, Violation{Field: join(path, r), Problem: "is missing"})
		}
	}
	if n.MaxProperties != nil && len(elems) > *n.MaxProperties {
		add("has %d fields, at most %d allowed", len(elems), *n.MaxProperties)
	}
	for _, e := range elems {
		key, val := e.Key(), e.Value()
		matched := false
		if sub, ok := n.Properties[key]; ok {
			sub.check(join(path, key), val, out)
			matched = true
		}
		for _, p := range n.patterns {
			if p.re.MatchString(key) {
				p.schema.check(join(path, key), val, out)
				matched = true
			}
		}
		if matched || n.AdditionalProperties == nil {
			continue
		}
		switch a := n.AdditionalProperties; {
		case a.schema != nil:
			a.schema.check(join(path, key), val, out)
		case !a.allowed:
			*out = append(*out, Violation{Field: join(path, key), Problem: "is not an allowed field name"})
		}
	}
}

// TypeName is MongoDB's name for a BSON type, as bsonType and the $type
// operator spell it.
func TypeName(t bson.Type) string {
	switch t {
	case bson.TypeDouble:
		return "double"
	case bson.TypeString:
		return "string"
	case bson.TypeEmbeddedDocument:
		return "object"
	case bson.TypeArray:
		return "array"
	case bson.TypeBinary:
		return "binData"
	case bson.TypeObjectID:
		return "objectId"
	case bson.TypeBoolean:
		return "bool"
	case bson.TypeDateTime:
		return "date"
	case bson.TypeNull:
		return "null"
	case bson.TypeRegex:
		return "regex"
	case bson.TypeInt32:
		return "int"
	case bson.TypeTimestamp:
		return "timestamp"
	case bson.TypeInt64:
		return "long"
	case bson.TypeDecimal128:
		return "decimal"
	case bson.TypeUndefined:
		return "undefined"
	}
	return t.String()
}

func typeMatches(want string, got bson.Type) bool {
	if want == "number" {
		return got == bson.TypeInt32 || got == bson.TypeInt64 || got == bson.TypeDouble || got == bson.TypeDecimal128
	}
	return TypeName(got) == want
}

func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// enumEquals compares a value from the schema file (decoded from JSON)
// with a BSON value. Only string enums are used.
func enumEquals(e any, v bson.RawValue) bool {
	s, ok := e.(string)
	return ok && v.Type == bson.TypeString && v.StringValue() == s
}

func enumList(es []any) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprint(e)
	}
	return strings.Join(parts, ", ")
}

// describe quotes a value for a violation without quoting whole documents.
func describe(v bson.RawValue) string {
	switch v.Type {
	case bson.TypeString:
		s := v.StringValue()
		if utf8.RuneCountInString(s) > 40 {
			s = string([]rune(s)[:40]) + "…"
		}
		return fmt.Sprintf("%q", s)
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		return fmt.Sprint(toFloat(v))
	}
	return article(TypeName(v.Type)) + " " + TypeName(v.Type)
}

func toFloat(v bson.RawValue) float64 {
	switch v.Type {
	case bson.TypeInt32:
		return float64(v.Int32())
	case bson.TypeInt64:
		return float64(v.Int64())
	}
	return v.Double()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
