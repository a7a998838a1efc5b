// Package docs holds the project's documentation; its test checks the Markdown links.
package docs
